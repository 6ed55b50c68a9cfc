"""Consistent placeholders: the same value in the same scope gets the same ``<KIND_n>``.

Values are identified by ``HMAC-SHA256(key, scope \\0 kind \\0 canonical)``, truncated to
128 bits, so a stored mapping holds digests and placeholders, never raw values, and the
digests of one worker cannot be matched against another worker's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Mapping
from typing import Final, Protocol

_PLACEHOLDER: Final = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")


def value_digest(key: bytes, scope: str, kind: str, canonical: str) -> str:
    message = f"{scope}\0{kind}\0{canonical}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


class PlaceholderStore(Protocol):
    """Numbers values per (scope, kind). Implementations must be thread-safe."""

    def placeholder_for(self, scope: str, kind: str, digest: str) -> str: ...


class InMemoryPlaceholderStore:
    """Process-local store; ``snapshot``/``restore`` let a caller persist a scope's mapping."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_scope: dict[str, dict[str, str]] = {}
        self._next_index: dict[tuple[str, str], int] = {}

    def placeholder_for(self, scope: str, kind: str, digest: str) -> str:
        with self._lock:
            mapping = self._by_scope.setdefault(scope, {})
            found = mapping.get(digest)
            if found is None:
                index = self._next_index.get((scope, kind), 1)
                self._next_index[scope, kind] = index + 1
                found = mapping[digest] = f"<{kind}_{index}>"
                self._numbered(scope, digest, found)
            return found

    def _numbered(self, scope: str, digest: str, placeholder: str) -> None:
        """A new number was handed out (a subclass that persists them records it)."""

    def snapshot(self, scope: str) -> dict[str, str]:
        """``{digest: placeholder}`` for one scope: safe to store, holds no raw value."""
        with self._lock:
            return dict(self._by_scope.get(scope, {}))

    def restore(self, scope: str, mapping: Mapping[str, str]) -> None:
        """Load a snapshot; numbering continues after the highest index per kind."""
        with self._lock:
            target = self._by_scope.setdefault(scope, {})
            for digest, placeholder in mapping.items():
                match = _PLACEHOLDER.fullmatch(placeholder)
                if match is None:
                    raise ValueError(f"not a placeholder: {placeholder!r}")
                target[digest] = placeholder
                kind, index = match.group(1), int(match.group(2))
                key = (scope, kind)
                self._next_index[key] = max(self._next_index.get(key, 1), index + 1)
