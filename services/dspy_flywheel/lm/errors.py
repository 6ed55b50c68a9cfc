"""Errors raised by ``dspy_flywheel.lm``.

    LMSetupError                 the LM cannot be built from the settings (retriable=False)
    ├── ModelNotFoundError       the embedded model file is missing or unverified
    └── UnknownModelError        FLYWHEEL_LM_MODEL names no known model and no file

Failures of a call (context overflow, bad schema, injected faults) are raised as
``dspy.lm15`` errors, which DSPy wraps and, for transient ones, retries.
"""

from __future__ import annotations

from typing import ClassVar


class LMSetupError(RuntimeError):
    retriable: ClassVar[bool] = False


class ModelNotFoundError(LMSetupError):
    pass


class UnknownModelError(LMSetupError):
    pass
