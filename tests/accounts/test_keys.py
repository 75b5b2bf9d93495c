from __future__ import annotations

import hashlib
import re

from tollway.accounts.keys import (
    ADMIN_TOKEN_PREFIX,
    KEY_PREFIX,
    generate_admin_token,
    generate_api_key,
    hash_secret,
    key_prefix,
    key_suffix,
    mask,
)

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def test_api_key_shape() -> None:
    key = generate_api_key()
    assert key.startswith(KEY_PREFIX) and KEY_PREFIX == "sk-"
    body = key.removeprefix(KEY_PREFIX)
    assert len(body) == 48  # 36 random bytes, base64url without padding
    assert URL_SAFE.match(body)


def test_api_keys_are_unique() -> None:
    assert len({generate_api_key() for _ in range(1000)}) == 1000


def test_admin_token_shape() -> None:
    token = generate_admin_token()
    assert token.startswith(ADMIN_TOKEN_PREFIX) and ADMIN_TOKEN_PREFIX == "tw-admin-"
    assert len(token.removeprefix(ADMIN_TOKEN_PREFIX)) == 43  # 32 random bytes
    assert URL_SAFE.match(token.removeprefix(ADMIN_TOKEN_PREFIX))
    assert generate_admin_token() != token
    assert not token.startswith(KEY_PREFIX)


def test_hash_is_sha256_hex_of_the_exact_key() -> None:
    key = "sk-" + "a" * 48
    assert hash_secret(key) == hashlib.sha256(key.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_secret(key))
    assert hash_secret(key) == hash_secret(key)
    assert hash_secret(key) != hash_secret(key + " ")
    assert hash_secret(key) != hash_secret(key.upper())
    assert key not in hash_secret(key)


def test_hash_of_non_ascii_secret() -> None:
    assert hash_secret("ключ") == hashlib.sha256("ключ".encode()).hexdigest()


def test_prefix_suffix_and_mask() -> None:
    key = "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcdefWXYZ"
    assert key_prefix(key) == "sk-AbCd"
    assert key_suffix(key) == "WXYZ"
    masked = mask(key_prefix(key), key_suffix(key))
    assert masked == "sk-AbCd…WXYZ"
    assert key not in masked


def test_mask_reveals_only_eleven_characters_of_a_real_key() -> None:
    key = generate_api_key()
    masked = mask(key_prefix(key), key_suffix(key))
    assert len(masked.replace("…", "")) == 11
    assert key[7:-4] not in masked
