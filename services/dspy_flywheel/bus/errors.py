"""Which failures retrying can fix: the broker or the database being away, nothing else.

``is_retriable(exc)``:

* an exception that says so: its ``retriable`` flag (aiokafka's errors and ours carry one);
* the network: ``OSError`` (refused, reset, unreachable), ``TimeoutError``;
* asyncpg's client side losing its connection (``InterfaceError``: closed, pool closing), and
  PostgreSQL errors whose SQLSTATE class means "not now": 08 connection, 40 transaction
  rollback (serialization, deadlock), 53 insufficient resources, 57 operator intervention
  (shutdown, restart), 58 system error, and 55P03 lock not available.

Anything else (a value the database refuses, a record a handler cannot process, a bug) fails
the same way however often it is retried: the record is set aside (DLQ) instead.

``RECORD_FAULTS``: what the producer raises for a fault of the record itself (larger than the
broker takes, a topic name it refuses); sending the same record again fails the same way.
"""

from __future__ import annotations

import asyncpg
from aiokafka.errors import InvalidTopicError, MessageSizeTooLargeError, RecordTooLargeError

RECORD_FAULTS = (MessageSizeTooLargeError, RecordTooLargeError, InvalidTopicError)

_RETRIABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_RETRIABLE_SQLSTATES = frozenset({"55P03"})


def is_retriable(exc: BaseException) -> bool:
    flag = getattr(exc, "retriable", None)
    if isinstance(flag, bool):
        return flag
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state[:2] in _RETRIABLE_SQLSTATE_CLASSES or state in _RETRIABLE_SQLSTATES
    return False
