"""Errors raised by the privacy package.

::

    PrivacyError                 retriable = False
     ├── RecognizerError         a recognizer raised while scanning text
     └── UnsupportedValueError   anonymize_value met a value that is not JSON-like

Nothing here is retriable: the same input fails the same way again.
"""

from __future__ import annotations

from typing import ClassVar


class PrivacyError(Exception):
    """Base class; ``retriable`` tells a caller whether trying again can help."""

    retriable: ClassVar[bool] = False


class RecognizerError(PrivacyError):
    """A recognizer failed; the text was not anonymized and must not be stored."""

    def __init__(self, recognizer: str, cause: BaseException) -> None:
        super().__init__(f"recognizer {recognizer!r} failed: {cause!r}")
        self.recognizer = recognizer


class UnsupportedValueError(PrivacyError, TypeError):
    """A value in a nested structure is not str/int/float/bool/None/dict/list/tuple."""
