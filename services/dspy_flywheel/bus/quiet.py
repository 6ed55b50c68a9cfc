"""Keep event payloads out of log lines.

aiokafka's producer logs every record it sends at DEBUG, value bytes included ("Sending
(key=... value=...)"): raw inputs and outputs of a worker, before the collector anonymizes
them. :func:`no_payloads_in_logs` installs a filter on the loggers that do so, replacing each
bytes argument by its length; every Kafka producer of this package calls it. Idempotent.
"""

from __future__ import annotations

import logging
from typing import Final

# Loggers that print record contents (checked against the aiokafka version in constraints.txt).
PAYLOAD_LOGGERS: Final = ("aiokafka.producer.producer", "aiokafka.producer.sender")


class _BytesRedactor(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, bytes | bytearray | memoryview) for a in record.args
        ):
            record.args = tuple(
                f"<{len(a)} bytes>" if isinstance(a, bytes | bytearray | memoryview) else a
                for a in record.args
            )
        return True


_REDACTOR: Final = _BytesRedactor("dspy_flywheel.no_payloads")


def no_payloads_in_logs() -> None:
    for name in PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
