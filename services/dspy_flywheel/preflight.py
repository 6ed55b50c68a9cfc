"""Start-up checks of the connection settings, shared by the services, the manager and the CLI.

``check_connections`` opens one Kafka and one PostgreSQL connection the way the service will
(``bus.preflight.check_kafka``, ``store.pool.check_postgres``). Settings that cannot work (wrong
password, unknown CA, plaintext client at a TLS listener, expired certificate, ...) raise
``ConnectionSetupError``; ``exit_on_setup_error`` turns that into one ERROR line naming the
setting and exit code 2: no retry loop, no traceback. Servers that are merely down pass: the
services' own retries handle an outage.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from dspy_flywheel.bus.preflight import check_kafka
from dspy_flywheel.security.errors import ConnectionSetupError
from dspy_flywheel.settings import FlywheelSettings
from dspy_flywheel.store.pool import check_postgres

log = logging.getLogger(__name__)
SETTINGS_EXIT = 2


async def check_connections(settings: object) -> None:
    """Check the connections of service settings (``FlywheelSettings``); others pass."""
    if isinstance(settings, FlywheelSettings):
        await check_kafka(settings.kafka)
        await check_postgres(settings.postgres)


@contextlib.contextmanager
def exit_on_setup_error() -> Iterator[None]:
    """A ``ConnectionSetupError`` inside ends the process: one ERROR line, exit code 2."""
    try:
        yield
    except ConnectionSetupError as exc:
        log.error("cannot start: %s", exc)
        logging.shutdown()
        sys.exit(SETTINGS_EXIT)
