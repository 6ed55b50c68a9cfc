"""UUIDv7 (RFC 9562): time-ordered ids for events and jobs.

``new_id`` takes its random bits from ``os.urandom``. ``fast_id``, for the worker's call path,
takes them from a process-local generator reseeded from ``os.urandom`` at import and after
``fork``: no system call (which also lets other threads take the GIL mid-call). Ids only need
to be unique, not secret: 74 random bits per millisecond.
"""

from __future__ import annotations

import os
import random
import time
import uuid

_random = random.Random()
_VARIANT = 0x8000000000000000  # RFC 9562 variant bits "10" in the top of the last 64 bits


def _reseed() -> None:
    _random.seed(os.urandom(32))


_reseed()
os.register_at_fork(after_in_child=_reseed)


def uuid7() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return uuid.UUID(int=value)


def new_id() -> str:
    return str(uuid7())


def fast_id() -> str:
    """A UUIDv7 string: 48-bit ms timestamp, version 7, variant, 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand_b = _random.getrandbits(62) | _VARIANT
    return "%08x-%04x-%04x-%04x-%012x" % (  # noqa: UP031  # the fastest formatting here
        ms >> 16,
        ms & 0xFFFF,
        0x7000 | _random.getrandbits(12),
        rand_b >> 48,
        rand_b & 0xFFFFFFFFFFFF,
    )
