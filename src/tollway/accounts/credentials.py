"""Upstream credentials are encrypted at rest with a key from config (Fernet: AES + HMAC)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class CredentialError(ValueError):
    pass


class CredentialBox:
    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise CredentialError("no secret key configured: set TOLLWAY_SECRET_KEY or secret_key in the config")
        # Any secret string works: derive the 32-byte Fernet key from it.
        derived = base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())
        self._fernet = Fernet(derived)

    def encrypt(self, credential: str) -> str:
        return self._fernet.encrypt(credential.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise CredentialError(
                "a channel credential cannot be decrypted: the secret key differs from the one it was saved with"
            ) from exc
