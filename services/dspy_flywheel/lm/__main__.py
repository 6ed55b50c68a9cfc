"""``python -m dspy_flywheel.lm start|status|stop|serve``: the shared LM server (see server.py)."""

import sys

from dspy_flywheel.lm.server import main

sys.exit(main())
