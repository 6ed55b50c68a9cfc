"""``python -m dspy_flywheel.trigger``: run the trigger service until SIGINT/SIGTERM."""

from dspy_flywheel.service_main import exit_cleanly_on_early_stop, serve

exit_cleanly_on_early_stop()  # the imports below take seconds

from dspy_flywheel.trigger.app import run  # noqa: E402
from dspy_flywheel.trigger.settings import TriggerSettings  # noqa: E402

if __name__ == "__main__":
    serve(run, TriggerSettings)
