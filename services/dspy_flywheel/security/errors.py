"""Errors of the connection settings (encryption and login in transit).

ConnectionSetupError (RuntimeError)   retriable=False: a Kafka or PostgreSQL connection cannot
                                      work as configured (wrong password, unknown CA, plaintext
                                      client at a TLS listener, expired certificate, ...);
                                      ``setting`` names the variable to fix, and the message says
                                      what is wrong. Never carries a secret.

It is raised at start-up (settings load, the services' connection check, the SDK's first
connection) instead of retrying: no retry can fix a setting.
"""

from __future__ import annotations

from typing import ClassVar


class ConnectionSetupError(RuntimeError):
    retriable: ClassVar[bool] = False

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting
