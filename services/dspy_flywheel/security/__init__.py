"""Encryption at rest and keyed hashing for stored training data (``crypto``); TLS contexts and
start-up errors for the connections that carry it (``tls``, ``errors``)."""

from dspy_flywheel.security.crypto import (
    Cipher,
    CryptoError,
    EncryptionSettings,
    KeyNotFound,
    generate_key,
)
from dspy_flywheel.security.errors import ConnectionSetupError

__all__ = [
    "Cipher", "ConnectionSetupError", "CryptoError", "EncryptionSettings", "KeyNotFound",
    "generate_key",
]  # fmt: skip
