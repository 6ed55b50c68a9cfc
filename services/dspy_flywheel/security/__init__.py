"""Encryption at rest and keyed hashing for stored training data."""

from dspy_flywheel.security.crypto import (
    Cipher,
    CryptoError,
    EncryptionSettings,
    KeyNotFound,
    generate_key,
)

__all__ = ["Cipher", "CryptoError", "EncryptionSettings", "KeyNotFound", "generate_key"]
