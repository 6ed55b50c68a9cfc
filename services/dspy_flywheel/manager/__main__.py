"""``python -m dspy_flywheel.manager``: serve the manager's HTTP API with uvicorn."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from dspy_flywheel.manager.api import create_secured_app
from dspy_flywheel.manager.core import OptimizationManager
from dspy_flywheel.manager.settings import ManagerSettings
from dspy_flywheel.metrics.setup import setup_telemetry
from dspy_flywheel.preflight import check_connections, exit_on_setup_error


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with exit_on_setup_error():
        settings = ManagerSettings()
        asyncio.run(check_connections(settings))
    setup_telemetry("dspy-flywheel-manager", settings)
    app = create_secured_app(OptimizationManager(settings))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
