"""API key and admin token material: generation, hashing, and the masked form humans see."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-"
ADMIN_TOKEN_PREFIX = "tw-admin-"


def generate_api_key() -> str:
    # 48 url-safe characters: 288 bits of entropy, the same look as One API keys.
    return KEY_PREFIX + secrets.token_urlsafe(36)


def generate_admin_token() -> str:
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Keys are long random strings, so one sha256 is enough (no slow KDF needed) and keeps
    authentication a dictionary lookup on the hot path."""
    return hashlib.sha256(secret.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:7]


def key_suffix(key: str) -> str:
    return key[-4:]


def mask(prefix: str, suffix: str) -> str:
    return f"{prefix}…{suffix}"
