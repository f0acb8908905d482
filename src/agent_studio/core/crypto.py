"""Secrets at rest: AES-256-GCM under the server's secret key, and hashing of API keys."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent_studio.config import Settings
from agent_studio.core.datadir import private_data_dir

log = logging.getLogger(__name__)

_SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret
_NONCE_BYTES = 12
_VERSION = b"\x01"


class SecretBox:
    """Encrypts and decrypts small secrets (provider API keys) with AES-GCM.

    Stored form: version byte, 12-byte nonce, ciphertext with tag. The associated data binds a
    ciphertext to its purpose, so a value cannot be moved to another column and still decrypt.
    """

    def __init__(self, master_key: bytes) -> None:
        self._master = master_key
        self._aead = AESGCM(self.derive(b"agent-studio/provider-keys"))

    def derive(self, purpose: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            self._master
        )

    def encrypt(self, plaintext: str, associated_data: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), associated_data)
        return _VERSION + nonce + sealed

    def decrypt(self, blob: bytes, associated_data: bytes = b"") -> str:
        if blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        return self._aead.decrypt(nonce, sealed, associated_data).decode()

    def __repr__(self) -> str:
        return "SecretBox(***)"


def load_master_key(settings: Settings) -> bytes:
    """The master key from `AGENT_STUDIO_SECRET_KEY`, or one generated once into the data dir."""
    if settings.secret_key is not None:
        raw = settings.secret_key.get_secret_value()
        return hashlib.sha256(raw.encode()).digest()
    path: Path = settings.data_dir / _SECRET_FILE
    if not path.exists():
        private_data_dir(settings.data_dir)
        key = base64.urlsafe_b64encode(secrets.token_bytes(32))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        log.info("generated a new secret key in the data dir")
    return hashlib.sha256(path.read_bytes().strip()).digest()


def hash_api_key(key: str) -> str:
    """API keys are 256-bit random tokens, so one SHA-256 is a sound, fast hash for lookup."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "as_" + secrets.token_urlsafe(32)


def mask_secret(value: str) -> str:
    """First 3 and last 4 characters, the rest starred; short values are starred whole."""
    if len(value) <= 10:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]
