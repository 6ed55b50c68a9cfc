"""``python -m dspy_flywheel.lm start|status|stop|serve``: the shared LM server (see server.py)."""

from __future__ import annotations

import logging
import sys

from dspy_flywheel.lm.launcher import ensure_server, server_config, status_line, stop_server
from dspy_flywheel.lm.server import serve


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
    print(f"usage: python -m dspy_flywheel.lm start|status|stop|serve (got {command!r})")
    return 2


if __name__ == "__main__":
    sys.exit(main())
