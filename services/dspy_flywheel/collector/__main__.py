"""``python -m dspy_flywheel.collector``: run the collector service until SIGINT/SIGTERM."""

from dspy_flywheel.service_main import exit_cleanly_on_early_stop, serve

exit_cleanly_on_early_stop()  # the imports below take seconds

from dspy_flywheel.collector.app import run  # noqa: E402
from dspy_flywheel.collector.settings import CollectorSettings  # noqa: E402

if __name__ == "__main__":
    serve(run, CollectorSettings)
