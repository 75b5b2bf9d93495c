"""Groups: a price multiplier and an optional allow-list of models, shared by their users."""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy import Engine, Select, delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from tollway.admin.validation import (
    UNSET,
    Unset,
    bad_request,
    check_model_list,
    check_name,
    conflict,
    iso_from_ms,
    json_or_null,
    not_found,
)
from tollway.billing.money import MoneyError, format_multiplier, parse_multiplier
from tollway.store.db import bump_config_version, now_ms
from tollway.store.tables import channels, groups, users

DEFAULT_GROUP = "default"


def create_group(
    engine: Engine,
    name: str,
    *,
    price_multiplier: str = "1",
    allowed_models: list[str] | None = None,
    description: str = "",
) -> dict[str, Any]:
    name = check_name(name, what="group", what_zh="分组", param="name")
    values = {
        "name": name,
        "price_multiplier_ppm": _parse_multiplier(price_multiplier),
        "allowed_models": json_or_null(check_model_list(allowed_models, param="allowed_models")),
        "description": _check_description(description),
        "created_at_ms": now_ms(),
    }
    try:
        with engine.begin() as conn:
            if _find(conn, name) is not None:
                _duplicate(name)
            conn.execute(insert(groups).values(**values))
            bump_config_version(conn)
    except IntegrityError:  # a concurrent create of the same name won the race
        _duplicate(name)
    return get_group(engine, name)


def update_group(
    engine: Engine,
    name: str,
    *,
    price_multiplier: str | None = None,
    allowed_models: list[str] | Unset | None = UNSET,
    description: str | None = None,
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if price_multiplier is not None:
        changes["price_multiplier_ppm"] = _parse_multiplier(price_multiplier)
    if not isinstance(allowed_models, Unset):
        changes["allowed_models"] = json_or_null(check_model_list(allowed_models, param="allowed_models"))
    if description is not None:
        changes["description"] = _check_description(description)
    with engine.begin() as conn:
        row = require_group(conn, name)
        if changes:
            conn.execute(update(groups).where(groups.c.id == row["id"]).values(**changes))
            bump_config_version(conn)
    return get_group(engine, name)


def get_group(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        require_group(conn, name)  # the NOT_FOUND that lists the real groups
        return _to_dict(conn.execute(_select_groups().where(groups.c.name == name)).mappings().one())


def list_groups(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(_select_groups().order_by(groups.c.name)).mappings().all()
    return [_to_dict(row) for row in rows]


def delete_group(engine: Engine, name: str) -> None:
    if name == DEFAULT_GROUP:
        bad_request(
            "the `default` group cannot be deleted: new users join it unless told otherwise",
            "`default` 分组不能删除：新用户默认加入该分组",
            "name",
        )
    with engine.begin() as conn:
        row = require_group(conn, name)
        members = conn.execute(select(func.count()).where(users.c.group_id == row["id"])).scalar_one()
        if members:
            conflict(
                f"group `{name}` still has {members} user(s); move them first with "
                f"`tollway users set NAME --group default`",
                f"分组 `{name}` 中还有 {members} 个用户，请先用 `tollway users set NAME --group default` 将其移出",
                "name",
            )
        using = [
            channel_name
            for channel_name, channel_groups in conn.execute(select(channels.c.name, channels.c.groups))
            if name in (channel_groups or [])
        ]
        if using:
            listed = ", ".join(sorted(using))
            conflict(
                f"group `{name}` is still served by channel(s) {listed}; remove it from their groups "
                f"first with `tollway channels set NAME --groups ...`",
                f"渠道 {listed} 仍在服务分组 `{name}`，请先用 `tollway channels set NAME --groups ...` "
                f"将其从渠道的分组中移除",
                "name",
            )
        conn.execute(delete(groups).where(groups.c.id == row["id"]))
        bump_config_version(conn)


# --- shared with users and channels ------------------------------------------------------------


def require_group(conn: Connection, name: str, *, param: str = "name") -> RowMapping:
    """The group row, or a NOT_FOUND that says how to create it and which groups exist."""
    row = _find(conn, name)
    if row is None:
        names = conn.execute(select(groups.c.name).order_by(groups.c.name)).scalars()
        existing = ", ".join(names) or "(none)"
        not_found(
            f"group `{name}` does not exist; create it with `tollway groups add {name}` or pick one of: {existing}",
            f"分组 `{name}` 不存在；请用 `tollway groups add {name}` 创建，或选择以下之一：{existing}",
            param,
        )
    return row


def _find(conn: Connection, name: str) -> RowMapping | None:
    return conn.execute(select(groups).where(groups.c.name == name)).mappings().first()


def _duplicate(name: str) -> NoReturn:
    conflict(
        f"group `{name}` already exists; change it with `tollway groups set {name}`",
        f"分组 `{name}` 已存在；请用 `tollway groups set {name}` 修改",
        "name",
    )


def _parse_multiplier(value: Any) -> int:
    try:
        return parse_multiplier(value)
    except MoneyError:
        bad_request(
            f'price_multiplier `{value}` must be a number >= 0 with at most 6 decimals, like "0.85"',
            f'price_multiplier `{value}` 必须是不小于 0、最多 6 位小数的数，例如 "0.85"',
            "price_multiplier",
        )


def _check_description(value: Any) -> str:
    if not isinstance(value, str):
        bad_request("description must be text", "description 必须是文本", "description")
    return value.strip()


def _select_groups() -> Select[Any]:
    user_count = select(func.count()).where(users.c.group_id == groups.c.id).scalar_subquery().label("user_count")
    return select(groups, user_count)


def _to_dict(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "price_multiplier": format_multiplier(row["price_multiplier_ppm"]),
        "price_multiplier_ppm": row["price_multiplier_ppm"],
        "allowed_models": row["allowed_models"],
        "user_count": int(row["user_count"]),
        "created_at": iso_from_ms(row["created_at_ms"]),
        "created_at_ms": row["created_at_ms"],
    }
