"""Encryption at rest of the worker's spool: AES-256-GCM per record, owner-only files.

The key, first found wins:

1. ``FLYWHEEL_WORKER_SPOOL_KEY`` (base64, 32 bytes), key id ``spool``;
2. the platform's keys, ``FLYWHEEL_ENCRYPTION_KEYS`` (+ ``FLYWHEEL_ENCRYPTION_ACTIVE_KEY``), when
   the worker's environment has them: records are sealed with the active key, any listed key
   opens them (rotation);
3. a per-worker key file, ``FLYWHEEL_WORKER_SPOOL_KEY_FILE`` (default
   ``$FLYWHEEL_HOME/keys/<worker id>.spool.key``), created on first use with mode 0600 in a 0700
   directory, kept apart from the spool directory.

A sealed record is ``<u8 key id length><key id><12-byte nonce><ciphertext + 16-byte tag>``; the
associated data binds it to the spool format and its key id.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Final

from dspy_flywheel.security.crypto import (
    KEY_LEN,
    Cipher,
    CryptoError,
    DecryptionFailed,
    EncryptionSettings,
    generate_key,
)

_AAD_PREFIX: Final = b"dspy-flywheel spool v1|"
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600


class SpoolSealer:
    """Seals and opens spool records with a :class:`Cipher` (thread-safe: no state per call)."""

    def __init__(self, cipher: Cipher) -> None:
        self._cipher = cipher
        self._key_id = cipher.active_key.encode()
        if not 0 < len(self._key_id) < 256:
            raise CryptoError("a spool key id must be 1-255 bytes")

    def seal(self, payload: bytes) -> bytes:
        kid = self._key_id
        return bytes([len(kid)]) + kid + self._cipher.encrypt(payload, _AAD_PREFIX + kid)

    def open(self, sealed: bytes) -> bytes:
        """The payload; raises :class:`CryptoError` for an unknown key or a forged record."""
        size = sealed[0] if sealed else 0
        kid = sealed[1 : 1 + size]
        if not size or len(kid) != size:
            raise DecryptionFailed("spool record has no key id")
        return self._cipher.decrypt(kid.decode(), sealed[1 + size :], _AAD_PREFIX + kid)


def owner_only_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed and make it 0700 (umask notwithstanding)."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)


def open_owner_only(path: Path, flags: int) -> int:
    """``os.open`` with mode 0600, also for a file an older version left world-readable."""
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def load_or_create_key(path: Path) -> bytes:
    """The 32-byte key in ``path`` (base64), created 0600 on first use."""
    owner_only_dir(path.parent)
    try:
        fd = open_owner_only(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        text = path.read_text().strip()
        os.chmod(path, FILE_MODE)
    else:
        text = generate_key()
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
    return _key(text, f"spool key file {path}")


def _key(text: str, source: str) -> bytes:
    key = base64.b64decode(text)
    if len(key) != KEY_LEN:
        raise CryptoError(f"{source} does not hold a {KEY_LEN}-byte base64 key")
    return key


def spool_cipher(spool_key: str | None, key_file: Path) -> Cipher:
    """The cipher of a worker's spool, from the sources listed in the module docstring."""
    if spool_key:
        return Cipher({"spool": _key(spool_key, "FLYWHEEL_WORKER_SPOOL_KEY")})
    platform = EncryptionSettings()
    if platform.keys is not None:
        return Cipher.from_settings(platform)
    return Cipher({"file": load_or_create_key(key_file)})
