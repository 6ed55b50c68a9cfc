"""``python -m dspy_flywheel.lm start|status|stop [--all]|serve``: the shared LM server (see
server.py). ``stop --all`` stops the server of every model in this state dir (CI's teardown)."""

from __future__ import annotations

import logging
import sys

from dspy_flywheel.lm.launcher import (
    ensure_server,
    server_config,
    status_line,
    stop_all,
    stop_server,
)
from dspy_flywheel.lm.server import serve
from dspy_flywheel.lm.settings import LMSettings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args[:2] == ["stop", "--all"]:  # needs no model file: reads the state dir only
        run_dir = LMSettings().run_dir
        print(f"stopped {stop_all(run_dir)} LM server(s) in {run_dir}")
        return 0
    config = server_config()
    if command == "serve":
        serve(config)
        return 0
    if command == "start":
        print(ensure_server(config).address)
        return 0
    if command == "status":
        line = status_line(config)
        print(line or f"no LM server for {config.model.model_name}")
        return 0 if line else 1
    if command == "stop":
        return 0 if stop_server(config) else 1
    print(f"usage: python -m dspy_flywheel.lm start|status|stop [--all]|serve (got {command!r})")
    return 2


if __name__ == "__main__":
    sys.exit(main())
