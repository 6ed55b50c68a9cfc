"""``python -m dspy_flywheel.collector``: run the collector service until SIGINT/SIGTERM."""

from __future__ import annotations

from dspy_flywheel.service_main import exit_cleanly_on_early_stop, serve

exit_cleanly_on_early_stop()  # the imports below take seconds

from dspy_flywheel.collector.app import run  # noqa: E402
from dspy_flywheel.collector.settings import CollectorSettings  # noqa: E402


def main() -> None:
    serve(run, CollectorSettings)


if __name__ == "__main__":
    main()
