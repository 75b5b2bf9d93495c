"""Users and their committed balance. Every balance change writes a ledger entry in the same
transaction, so the ledger always explains the balance."""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

from sqlalchemy import Engine, Select, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from tollway.admin.groups import DEFAULT_GROUP, require_group
from tollway.admin.validation import (
    bad_request,
    check_choice,
    check_name,
    conflict,
    iso_from_ms,
    not_found,
    parse_usd,
    usd_text,
)
from tollway.store.db import bump_config_version, now_ms
from tollway.store.tables import groups, ledger_entries, users

ROLES = ("user", "admin")
STATUSES = ("active", "disabled")


def create_user(
    engine: Engine,
    name: str,
    *,
    group: str = DEFAULT_GROUP,
    balance_usd: str = "0",
    role: str = "user",
    email: str | None = None,
) -> dict[str, Any]:
    name = check_name(name, what="user", what_zh="用户", param="name")
    balance = parse_usd(balance_usd, param="balance_usd")
    role = check_choice(role, ROLES, param="role")
    email = _check_email(email)
    created = now_ms()
    try:
        with engine.begin() as conn:
            if _find(conn, name) is not None:
                _duplicate(name)
            group_row = require_group(conn, group, param="group")
            user_id = conn.execute(
                insert(users)
                .values(
                    name=name,
                    email=email,
                    role=role,
                    status="active",
                    group_id=group_row["id"],
                    balance_nano=balance,
                    created_at_ms=created,
                )
                .returning(users.c.id)
            ).scalar_one()
            if balance > 0:
                _write_ledger(conn, user_id, "topup", balance, "initial balance", created)
            bump_config_version(conn)
    except IntegrityError:  # a concurrent create of the same name won the race
        _duplicate(name)
    return get_user(engine, name)


def get_user(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(_select_users().where(users.c.name == name)).mappings().first()
    if row is None:
        _missing(name)
    return _to_dict(row)


def list_users(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(_select_users().order_by(users.c.name)).mappings().all()
    return [_to_dict(row) for row in rows]


def update_user(
    engine: Engine,
    name: str,
    *,
    status: str | None = None,
    group: str | None = None,
    role: str | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    """None leaves a field as it is; an empty email clears it."""
    changes: dict[str, Any] = {}
    if status is not None:
        changes["status"] = check_choice(status, STATUSES, param="status")
    if role is not None:
        changes["role"] = check_choice(role, ROLES, param="role")
    if email is not None:
        changes["email"] = _check_email(email)
    with engine.begin() as conn:
        user_id = require_user_id(conn, name)
        if group is not None:
            changes["group_id"] = require_group(conn, group, param="group")["id"]
        if changes:
            conn.execute(update(users).where(users.c.id == user_id).values(**changes))
            bump_config_version(conn)
    return get_user(engine, name)


def adjust_balance(engine: Engine, name: str, delta_usd: str, *, note: str = "") -> dict[str, Any]:
    """Add a signed amount to the committed balance, atomically, with its ledger entry."""
    delta = parse_usd(delta_usd, param="delta_usd", allow_negative=True)
    if delta == 0:
        bad_request(
            "delta_usd must not be zero; use a positive amount to top up or a negative one to deduct",
            "delta_usd 不能为 0；充值请用正数，扣减请用负数",
            "delta_usd",
        )
    if not isinstance(note, str):
        bad_request("note must be text", "note 必须是文本", "note")
    with engine.begin() as conn:
        user_id = require_user_id(conn, name)
        # One SQL expression, so concurrent adjustments (and gateway leases) can never lose an
        # update; the guard makes the database refuse an overdraft instead of Python deciding.
        stmt = update(users).where(users.c.id == user_id).values(balance_nano=users.c.balance_nano + delta)
        if delta < 0:
            stmt = stmt.where(users.c.balance_nano + delta >= 0)
        if conn.execute(stmt).rowcount != 1:
            current = conn.execute(select(users.c.balance_nano).where(users.c.id == user_id)).scalar_one()
            bad_request(
                f"cannot deduct {usd_text(-delta)} USD from user `{name}`: the balance is only "
                f"{usd_text(current)} USD; deduct at most that much",
                f"无法从用户 `{name}` 扣减 {usd_text(-delta)} 美元：余额仅有 {usd_text(current)} 美元，"
                f"最多只能扣减这么多",
                "delta_usd",
            )
        _write_ledger(conn, user_id, "topup" if delta > 0 else "adjust", delta, note.strip(), now_ms())
        # No config-version bump: balances are not in the gateway's snapshot (leases read them
        # from the database), so a top-up must not make every node rebuild its config.
    return get_user(engine, name)


def list_ledger(engine: Engine, name: str, *, limit: int = 50) -> list[dict[str, Any]]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        bad_request("limit must be between 1 and 1000", "limit 必须在 1 到 1000 之间", "limit")
    with engine.connect() as conn:
        user_id = require_user_id(conn, name)
        rows = (
            conn.execute(
                select(ledger_entries)
                .where(ledger_entries.c.user_id == user_id)
                .order_by(ledger_entries.c.created_at_ms.desc(), ledger_entries.c.id.desc())
                .limit(limit)
            )
            .mappings()
            .all()
        )
    return [
        {
            "request_id": row["request_id"],
            "kind": row["kind"],
            "key_id": row["key_id"],
            "amount_nano": row["amount_nano"],
            "amount_usd": usd_text(row["amount_nano"]),
            "note": row["note"],
            "created_at": iso_from_ms(row["created_at_ms"]),
            "created_at_ms": row["created_at_ms"],
        }
        for row in rows
    ]


# --- shared with keys ---------------------------------------------------------------------------


def require_user_id(conn: Connection, name: str, *, param: str = "name") -> int:
    row = _find(conn, name)
    if row is None:
        _missing(name, param)
    return int(row["id"])


def _find(conn: Connection, name: str) -> RowMapping | None:
    return conn.execute(select(users.c.id).where(users.c.name == name)).mappings().first()


def _missing(name: str, param: str = "name") -> NoReturn:
    not_found(
        f"user `{name}` does not exist; see `tollway users list` or create it with `tollway users add {name}`",
        f"用户 `{name}` 不存在；请查看 `tollway users list`，或用 `tollway users add {name}` 创建",
        param,
    )


def _duplicate(name: str) -> NoReturn:
    conflict(
        f"user `{name}` already exists; change it with `tollway users set {name}`",
        f"用户 `{name}` 已存在；请用 `tollway users set {name}` 修改",
        "name",
    )


def _check_email(email: Any) -> str | None:
    if email is None:
        return None
    if not isinstance(email, str):
        bad_request("email must be text", "email 必须是文本", "email")
    email = email.strip()
    if not email:
        return None
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email) or len(email) > 255:
        bad_request(
            f"email `{email}` does not look like an address such as name@example.com",
            f"email `{email}` 不是有效的邮箱地址，例如 name@example.com",
            "email",
        )
    return email


def _write_ledger(conn: Connection, user_id: int, kind: str, amount: int, note: str, at_ms: int) -> None:
    conn.execute(
        insert(ledger_entries).values(
            request_id=f"op-{uuid.uuid4().hex}",
            kind=kind,
            user_id=user_id,
            key_id=None,
            amount_nano=amount,
            note=note,
            created_at_ms=at_ms,
        )
    )


def _select_users() -> Select[Any]:
    return select(users, groups.c.name.label("group_name")).join(groups, groups.c.id == users.c.group_id)


def _to_dict(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "role": row["role"],
        "status": row["status"],
        "group": row["group_name"],
        "balance_nano": row["balance_nano"],
        "balance_usd": usd_text(row["balance_nano"]),
        "created_at": iso_from_ms(row["created_at_ms"]),
        "created_at_ms": row["created_at_ms"],
    }
