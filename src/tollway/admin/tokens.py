"""Admin tokens for the REST API. Only their sha256 and last four characters are stored.

They are not part of the gateway snapshot (the admin API checks them against the store), so
writing them does not bump the config version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, insert, select

from tollway.accounts.keys import generate_admin_token, hash_secret
from tollway.admin.validation import bad_request, iso_from_ms, not_found
from tollway.store.db import now_ms
from tollway.store.tables import admin_tokens


def create_admin_token(engine: Engine, name: str = "admin") -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 64:
        bad_request(
            "admin token name must be 1 to 64 characters",
            "管理令牌名称必须为 1 到 64 个字符",
            "name",
        )
    token = generate_admin_token()
    with engine.begin() as conn:
        conn.execute(
            insert(admin_tokens).values(
                name=name.strip(),
                token_hash=hash_secret(token),
                token_suffix=token[-4:],
                created_at_ms=now_ms(),
            )
        )
    return token


def verify_admin_token(engine: Engine, token: str) -> bool:
    # Looking up the hash leaks nothing useful through timing: an attacker would need a
    # preimage of the stored hash, not a prefix of the token.
    if not isinstance(token, str) or not token:
        return False
    with engine.connect() as conn:
        found = conn.execute(select(admin_tokens.c.id).where(admin_tokens.c.token_hash == hash_secret(token))).first()
    return found is not None


def has_admin_tokens(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(admin_tokens.c.id).limit(1)).first() is not None


def list_admin_tokens(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        t = admin_tokens.c
        columns = (t.id, t.name, t.token_suffix, t.created_at_ms)  # never the hash
        rows = conn.execute(select(*columns).order_by(admin_tokens.c.id)).mappings()
        return [
            {
                "id": row["id"],
                "name": row["name"],
                "suffix": row["token_suffix"],
                "created_at": iso_from_ms(row["created_at_ms"]),
                "created_at_ms": row["created_at_ms"],
            }
            for row in rows
        ]


def delete_admin_token(engine: Engine, token_id: int) -> None:
    with engine.begin() as conn:
        deleted = conn.execute(delete(admin_tokens).where(admin_tokens.c.id == token_id)).rowcount
    if not deleted:
        not_found(
            f"admin token {token_id} does not exist",
            f"管理令牌 {token_id} 不存在",
            "token_id",
        )
