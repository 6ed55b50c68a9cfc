"""A named, ordered set of recognizers that users can extend."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from dspy_flywheel.privacy.contact import EmailRecognizer
from dspy_flywheel.privacy.credentials import SecretRecognizer
from dspy_flywheel.privacy.financial import CreditCardRecognizer, IbanRecognizer, SsnRecognizer
from dspy_flywheel.privacy.names import PersonNameRecognizer
from dspy_flywheel.privacy.national_ids import NationalIdRecognizer
from dspy_flywheel.privacy.network import IPv4Recognizer, IPv6Recognizer
from dspy_flywheel.privacy.phones import PhoneRecognizer
from dspy_flywheel.privacy.spans import Recognizer


class RecognizerRegistry:
    """Recognizers by unique name; iteration yields them in registration order.

    Iteration works on a copy, so registering while another thread anonymizes is safe.
    """

    def __init__(self, recognizers: Iterable[Recognizer] = ()) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, Recognizer] = {}
        for recognizer in recognizers:
            self.register(recognizer)

    def register(self, recognizer: Recognizer, *, replace: bool = False) -> None:
        if not isinstance(recognizer, Recognizer):
            raise TypeError(f"{recognizer!r} has no name/find(text)")
        with self._lock:
            if recognizer.name in self._by_name and not replace:
                raise ValueError(f"recognizer {recognizer.name!r} already registered")
            self._by_name[recognizer.name] = recognizer

    def unregister(self, name: str) -> Recognizer:
        with self._lock:
            return self._by_name.pop(name)

    def get(self, name: str) -> Recognizer:
        with self._lock:
            return self._by_name[name]

    def names(self) -> list[str]:
        with self._lock:
            return list(self._by_name)

    def __iter__(self) -> Iterator[Recognizer]:
        with self._lock:
            return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_name)


def default_recognizers(*, phone_region: str = "US", names: bool = True) -> RecognizerRegistry:
    """A fresh registry with every built-in recognizer (person names optional)."""
    registry = RecognizerRegistry(
        [
            SecretRecognizer(),
            EmailRecognizer(),
            IbanRecognizer(),
            CreditCardRecognizer(),
            SsnRecognizer(),
            NationalIdRecognizer(),
            IPv6Recognizer(),
            IPv4Recognizer(),
            PhoneRecognizer(default_region=phone_region),
        ]
    )
    if names:
        registry.register(PersonNameRecognizer())
    return registry
