"""API keys. The full key exists only in the value create_key returns; the store keeps its
sha256, and everything else shows the masked form."""

from __future__ import annotations

import ipaddress
from typing import Any, NoReturn

from sqlalchemy import Engine, Select, delete, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from tollway.accounts.keys import generate_api_key, hash_secret, key_prefix, key_suffix, mask
from tollway.admin.users import require_user_id
from tollway.admin.validation import (
    UNSET,
    Unset,
    bad_request,
    check_choice,
    check_model_list,
    iso_from_ms,
    json_or_null,
    not_found,
    parse_time_point,
    parse_usd,
    usd_text,
)
from tollway.store.db import bump_config_version, now_ms
from tollway.store.tables import api_keys, users

ENVIRONMENTS = ("test", "prod")
KEY_STATUSES = ("active", "disabled")


def create_key(
    engine: Engine,
    user: str,
    *,
    name: str = "default",
    spend_limit_usd: str | None = None,
    expires_at: str | None = None,
    allowed_models: list[str] | None = None,
    allowed_ips: list[str] | None = None,
    environment: str = "prod",
    project: str | None = None,
) -> dict[str, Any]:
    values = {
        "name": _check_key_name(name),
        "spend_limit_nano": _parse_limit(spend_limit_usd),
        "expires_at_ms": _parse_expiry(expires_at),
        "allowed_models": json_or_null(check_model_list(allowed_models, param="allowed_models")),
        "allowed_ips": json_or_null(_check_ips(allowed_ips)),
        "environment": check_choice(environment, ENVIRONMENTS, param="environment"),
        "project": _check_project(project),
    }
    key = generate_api_key()
    with engine.begin() as conn:
        user_id = require_user_id(conn, user, param="user")
        key_id = conn.execute(
            insert(api_keys)
            .values(
                user_id=user_id,
                key_hash=hash_secret(key),
                key_prefix=key_prefix(key),
                key_suffix=key_suffix(key),
                status="active",
                spent_nano=0,
                created_at_ms=now_ms(),
                **values,
            )
            .returning(api_keys.c.id)
        ).scalar_one()
        bump_config_version(conn)
    created = get_key(engine, key_id)
    created["key"] = key  # the only place the full key ever appears
    return created


def get_key(engine: Engine, key_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(_select_keys().where(api_keys.c.id == key_id)).mappings().first()
    if row is None:
        _missing(key_id)
    return _to_dict(row)


def list_keys(engine: Engine, *, user: str | None = None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = _select_keys().order_by(api_keys.c.id)
        if user is not None:
            query = query.where(api_keys.c.user_id == require_user_id(conn, user, param="user"))
        rows = conn.execute(query).mappings().all()
    return [_to_dict(row) for row in rows]


def update_key(
    engine: Engine,
    key_id: int,
    *,
    name: str | None = None,
    status: str | None = None,
    spend_limit_usd: str | Unset | None = UNSET,
    expires_at: str | Unset | None = UNSET,
    allowed_models: list[str] | Unset | None = UNSET,
    allowed_ips: list[str] | Unset | None = UNSET,
    environment: str | None = None,
    project: str | Unset | None = UNSET,
) -> dict[str, Any]:
    """None leaves name/status/environment unchanged; for the others UNSET leaves them and
    None clears them (unlimited, never expires, any model, any IP, no project)."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = _check_key_name(name)
    if status is not None:
        changes["status"] = check_choice(status, KEY_STATUSES, param="status")
    if not isinstance(spend_limit_usd, Unset):
        changes["spend_limit_nano"] = _parse_limit(spend_limit_usd)
    if not isinstance(expires_at, Unset):
        changes["expires_at_ms"] = _parse_expiry(expires_at)
    if not isinstance(allowed_models, Unset):
        changes["allowed_models"] = json_or_null(check_model_list(allowed_models, param="allowed_models"))
    if not isinstance(allowed_ips, Unset):
        changes["allowed_ips"] = json_or_null(_check_ips(allowed_ips))
    if environment is not None:
        changes["environment"] = check_choice(environment, ENVIRONMENTS, param="environment")
    if not isinstance(project, Unset):
        changes["project"] = _check_project(project)
    with engine.begin() as conn:
        _require_key(conn, key_id)
        if changes:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**changes))
            bump_config_version(conn)
    return get_key(engine, key_id)


def delete_key(engine: Engine, key_id: int) -> None:
    with engine.begin() as conn:
        _require_key(conn, key_id)
        conn.execute(delete(api_keys).where(api_keys.c.id == key_id))
        bump_config_version(conn)


# --- validation -------------------------------------------------------------------------------


def _check_key_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        bad_request("key name must not be empty", "密钥名称不能为空", "name")
    if len(name.strip()) > 128:
        bad_request("key name is longer than 128 characters", "密钥名称超过 128 个字符", "name")
    return name.strip()


def _check_project(project: Any) -> str | None:
    if project is None:
        return None
    if not isinstance(project, str):
        bad_request("project must be text", "project 必须是文本", "project")
    if len(project.strip()) > 128:
        bad_request("project is longer than 128 characters", "project 超过 128 个字符", "project")
    return project.strip() or None


def _parse_limit(value: str | None) -> int | None:
    return None if value is None else parse_usd(value, param="spend_limit_usd")


def _parse_expiry(value: str | None) -> int | None:
    if value is None:
        return None
    at_ms = parse_time_point(value, param="expires_at", relative_to_future=True)
    if at_ms <= now_ms():
        bad_request(
            f"expires_at `{value}` is already in the past; give a future date or a duration like `30d`",
            f"expires_at `{value}` 已经过去；请给出未来的日期，或如 `30d` 的时长",
            "expires_at",
        )
    return at_ms


def _check_ips(values: Any) -> list[str] | None:
    """Normalized networks ("10.0.0.0/8", "1.2.3.4/32") so the snapshot can parse them blindly."""
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, list | tuple):
        bad_request(
            "allowed_ips must be a list of IPs or CIDR ranges",
            "allowed_ips 必须是 IP 或 CIDR 网段列表",
            "allowed_ips",
        )
    networks: list[str] = []
    for entry in values:
        try:
            networks.append(str(ipaddress.ip_network(str(entry).strip(), strict=False)))
        except ValueError:
            bad_request(
                f"allowed_ips entry `{entry}` is not an IP address or CIDR range like 10.0.0.0/8 or 1.2.3.4",
                f"allowed_ips 中的 `{entry}` 不是 IP 地址或 CIDR 网段，例如 10.0.0.0/8 或 1.2.3.4",
                "allowed_ips",
            )
    if not networks:
        bad_request(
            "allowed_ips must name at least one IP or range; to allow any IP, pass null (CLI: --any-ip)",
            "allowed_ips 必须至少包含一个 IP 或网段；如需允许任意 IP，请传 null（命令行：--any-ip）",
            "allowed_ips",
        )
    return list(dict.fromkeys(networks))


# --- rows -------------------------------------------------------------------------------------


def _require_key(conn: Connection, key_id: int) -> None:
    if conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first() is None:
        _missing(key_id)


def _missing(key_id: Any) -> NoReturn:
    not_found(
        f"key {key_id} does not exist; see `tollway keys list` for key ids",
        f"密钥 {key_id} 不存在；请用 `tollway keys list` 查看密钥编号",
        "key_id",
    )


def _select_keys() -> Select[Any]:
    # Name the columns: the hash must never even be read into a result row here.
    return select(
        api_keys.c.id,
        api_keys.c.name,
        users.c.name.label("user_name"),
        api_keys.c.key_prefix,
        api_keys.c.key_suffix,
        api_keys.c.status,
        api_keys.c.expires_at_ms,
        api_keys.c.spend_limit_nano,
        api_keys.c.spent_nano,
        api_keys.c.allowed_models,
        api_keys.c.allowed_ips,
        api_keys.c.environment,
        api_keys.c.project,
        api_keys.c.created_at_ms,
    ).join(users, users.c.id == api_keys.c.user_id)


def _to_dict(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "user": row["user_name"],
        "masked": mask(row["key_prefix"], row["key_suffix"]),
        "status": row["status"],
        "expires_at": iso_from_ms(row["expires_at_ms"]),
        "expires_at_ms": row["expires_at_ms"],
        "spend_limit_nano": row["spend_limit_nano"],
        "spend_limit_usd": usd_text(row["spend_limit_nano"]),
        "spent_nano": row["spent_nano"],
        "spent_usd": usd_text(row["spent_nano"]),
        "allowed_models": row["allowed_models"],
        "allowed_ips": row["allowed_ips"],
        "environment": row["environment"],
        "project": row["project"],
        "created_at": iso_from_ms(row["created_at_ms"]),
        "created_at_ms": row["created_at_ms"],
    }
