"""Which version serves a call: a pure function of the routing key, the same in every replica.

A call's routing key (the caller's, e.g. a session or user id so a conversation sticks; else the
execution id) is hashed with the worker id and the candidate's version into a point of [0, 1);
the candidate serves the keys below its share. Every replica computes the same split without
talking to the others, and each new candidate draws a new set of keys (its version is in the
hash), so no user is always the one on canary. BLAKE2b is keyed by nothing and stable across
processes and Python versions (``hash()`` is not).
"""

from __future__ import annotations

import hashlib
from typing import Final

_SPACE: Final = 1 << 64


class Split:
    """``share`` of the keys go to ``candidate_version`` of ``worker_id``."""

    __slots__ = ("_prefix", "_threshold", "candidate_version", "share", "worker_id")

    def __init__(self, worker_id: str, candidate_version: int, share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        self.worker_id = worker_id
        self.candidate_version = candidate_version
        self.share = share
        self._prefix = f"{worker_id}\x00{candidate_version}\x00".encode()
        self._threshold = int(share * _SPACE)

    def to_candidate(self, key: str) -> bool:
        return self._hash(key) < self._threshold

    def _hash(self, key: str) -> int:
        digest = hashlib.blake2b(self._prefix + key.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")
