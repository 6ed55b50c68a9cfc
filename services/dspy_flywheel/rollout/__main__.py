"""``python -m dspy_flywheel.rollout``: run the rollout service until SIGINT/SIGTERM."""

from dspy_flywheel.service_main import exit_cleanly_on_early_stop, serve

exit_cleanly_on_early_stop()  # the imports below take a moment

from dspy_flywheel.rollout.app import run  # noqa: E402
from dspy_flywheel.rollout.settings import RolloutSettings  # noqa: E402

if __name__ == "__main__":
    serve(run, RolloutSettings)
