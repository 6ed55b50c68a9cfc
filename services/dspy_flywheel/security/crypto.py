"""AES-256-GCM encryption at rest with key ids for rotation, plus keyed hashing.

Settings (prefix ``FLYWHEEL_ENCRYPTION_``)::

    FLYWHEEL_ENCRYPTION_KEYS="kid1:<base64 32 bytes>,kid2:<base64 32 bytes>"   # required
    FLYWHEEL_ENCRYPTION_ACTIVE_KEY=kid2        # encrypts new data; default: the last key listed
    FLYWHEEL_ENCRYPTION_HASH_KEY=<base64>      # HMAC key for input hashes and PII placeholders;
                                               # default: derived (HKDF) from the FIRST key listed,
                                               # so keep the oldest key first when rotating.

Generate a key: ``python -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"``
or ``flywheel dataset keygen``.

Ciphertext layout: 12-byte random nonce + AES-GCM ciphertext and tag. The key id is stored next to
it (a ``key_id`` column); the associated data (AAD) binds a ciphertext to its row and column, so a
value copied into another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

NONCE_LEN = 12
KEY_LEN = 32


class CryptoError(ValueError):
    """Base of the errors below; none is retriable (a config or data problem)."""

    retriable: ClassVar[bool] = False


class KeyNotFound(CryptoError):
    pass


class DecryptionFailed(CryptoError):
    pass


class EncryptionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_ENCRYPTION_", extra="ignore")

    keys: SecretStr | None = None
    active_key: str | None = None
    hash_key: SecretStr | None = None


def generate_key() -> str:
    """A fresh base64 key suitable for ``FLYWHEEL_ENCRYPTION_KEYS``."""
    return base64.b64encode(os.urandom(KEY_LEN)).decode()


def _decode_key(kid: str, text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError(f"encryption key {kid!r} is not valid base64") from exc
    if len(raw) != KEY_LEN:
        raise CryptoError(f"encryption key {kid!r} must be {KEY_LEN} bytes, got {len(raw)}")
    return raw


def parse_keys(spec: str) -> dict[str, bytes]:
    """Parse ``"kid1:<b64>,kid2:<b64>"`` keeping the listed order."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kid, sep, text = item.partition(":")
        if not sep or not kid:
            raise CryptoError("FLYWHEEL_ENCRYPTION_KEYS entries must look like kid:<base64>")
        if kid in keys:
            raise CryptoError(f"duplicate encryption key id {kid!r}")
        keys[kid] = _decode_key(kid, text)
    if not keys:
        raise CryptoError("FLYWHEEL_ENCRYPTION_KEYS is empty")
    return keys


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=None, info=info).derive(key)


class Cipher:
    """Encrypts with the active key, decrypts with any known key id."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        active_key: str | None = None,
        hash_key: bytes | None = None,
    ) -> None:
        if not keys:
            raise CryptoError("at least one encryption key is required")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active_key = active_key or list(keys)[-1]
        if self.active_key not in self._aead:
            raise KeyNotFound(f"active key {self.active_key!r} is not among the configured keys")
        root = hash_key if hash_key is not None else _derive(next(iter(keys.values())), b"hash")
        self._hash_key = _derive(root, b"dspy-flywheel input-hash v1")
        self.pii_key = _derive(root, b"dspy-flywheel pii-placeholders v1")

    @classmethod
    def from_settings(cls, settings: EncryptionSettings | None = None) -> Cipher:
        settings = settings or EncryptionSettings()
        if settings.keys is None:
            raise CryptoError(
                "FLYWHEEL_ENCRYPTION_KEYS is not set (kid:<base64 32 bytes>[,...]); "
                "generate one with `flywheel dataset keygen`"
            )
        keys = parse_keys(settings.keys.get_secret_value())
        hash_key = (
            _decode_key("hash", settings.hash_key.get_secret_value()) if settings.hash_key else None
        )
        return cls(keys, settings.active_key, hash_key)

    @property
    def key_ids(self) -> list[str]:
        return list(self._aead)

    def _key(self, key_id: str) -> AESGCM:
        aead = self._aead.get(key_id)
        if aead is None:
            raise KeyNotFound(f"no key with id {key_id!r}; configured: {self.key_ids}")
        return aead

    def encrypt(self, plaintext: bytes, aad: bytes, key_id: str | None = None) -> bytes:
        """Encrypt under ``key_id`` (default: the active key)."""
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._key(key_id or self.active_key).encrypt(nonce, plaintext, aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._key(key_id).decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], aad)
        except InvalidTag as exc:
            raise DecryptionFailed(f"ciphertext does not authenticate (key {key_id!r})") from exc

    def keyed_hash(self, data: bytes) -> bytes:
        """HMAC-SHA256 under the hash key: stable across encryption-key rotation."""
        return hmac.new(self._hash_key, data, hashlib.sha256).digest()
