"""Upstream channels. The credential goes into the store encrypted and never comes back out
of this module: the returned dicts only say whether one is set."""

from __future__ import annotations

from typing import Any, NoReturn
from urllib.parse import SplitResult, urlsplit

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from tollway.accounts.credentials import CredentialBox
from tollway.admin.groups import DEFAULT_GROUP, require_group
from tollway.admin.validation import (
    UNSET,
    Unset,
    bad_request,
    check_choice,
    check_model_list,
    check_model_name,
    check_name,
    conflict,
    iso_from_ms,
    not_found,
)
from tollway.store.db import bump_config_version, now_ms
from tollway.store.tables import channels

CHANNEL_TYPES = ("openai", "demo")
CHANNEL_STATUSES = ("enabled", "disabled")


def create_channel(
    engine: Engine,
    box: CredentialBox,
    name: str,
    *,
    type: str,
    base_url: str = "",
    credential: str | None = None,
    models: list[str],
    model_mapping: dict[str, str] | None = None,
    groups: list[str] | None = None,
    priority: int = 0,
    weight: int = 1,
    status: str = "enabled",
) -> dict[str, Any]:
    name = check_name(name, what="channel", what_zh="渠道", param="name", max_len=128)
    channel_type = check_choice(type, CHANNEL_TYPES, param="type")
    model_list = check_model_list(models, param="models", allow_none=False)
    assert model_list is not None
    values = {
        "name": name,
        "type": channel_type,
        "base_url": _check_base_url(base_url, channel_type),
        "credential_encrypted": _encrypt(box, credential),
        "models": model_list,
        "model_mapping": _check_mapping(model_mapping or {}, model_list),
        "groups": _check_group_list([DEFAULT_GROUP] if groups is None else groups),
        "priority": _check_int(priority, param="priority"),
        "weight": _check_weight(weight),
        "status": check_choice(status, CHANNEL_STATUSES, param="status"),
        "created_at_ms": now_ms(),
    }
    try:
        with engine.begin() as conn:
            if _find(conn, name) is not None:
                _duplicate(name)
            _require_groups(conn, values["groups"])
            conn.execute(insert(channels).values(**values))
            bump_config_version(conn)
    except IntegrityError:  # a concurrent create of the same name won the race
        _duplicate(name)
    return get_channel(engine, name)


def update_channel(
    engine: Engine,
    box: CredentialBox,
    name: str,
    *,
    base_url: str | None = None,
    credential: str | Unset | None = UNSET,
    models: list[str] | None = None,
    model_mapping: dict[str, str] | None = None,
    groups: list[str] | None = None,
    priority: int | None = None,
    weight: int | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """None leaves a field unchanged; credential=None removes the stored credential."""
    changes: dict[str, Any] = {}
    if not isinstance(credential, Unset):
        changes["credential_encrypted"] = _encrypt(box, credential)
    if groups is not None:
        changes["groups"] = _check_group_list(groups)
    if priority is not None:
        changes["priority"] = _check_int(priority, param="priority")
    if weight is not None:
        changes["weight"] = _check_weight(weight)
    if status is not None:
        changes["status"] = check_choice(status, CHANNEL_STATUSES, param="status")
    with engine.begin() as conn:
        row = _require(conn, name)
        if base_url is not None:
            changes["base_url"] = _check_base_url(base_url, row["type"])
        if models is not None or model_mapping is not None:
            # The mapping is checked against the models it will live with after this update.
            new_models = row["models"]
            if models is not None:
                new_models = check_model_list(models, param="models", allow_none=False)
            new_mapping = row["model_mapping"] if model_mapping is None else model_mapping
            changes["models"] = new_models
            changes["model_mapping"] = _check_mapping(new_mapping, new_models)
        if "groups" in changes:
            _require_groups(conn, changes["groups"])
        if changes:
            conn.execute(update(channels).where(channels.c.id == row["id"]).values(**changes))
            bump_config_version(conn)
    return get_channel(engine, name)


def get_channel(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return _to_dict(_require(conn, name))


def list_channels(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(channels).order_by(channels.c.priority.desc(), channels.c.name)).mappings()
        return [_to_dict(row) for row in rows]


def delete_channel(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        row = _require(conn, name)
        conn.execute(delete(channels).where(channels.c.id == row["id"]))
        bump_config_version(conn)


# --- validation -------------------------------------------------------------------------------


def _check_base_url(value: Any, channel_type: str) -> str:
    if not isinstance(value, str):
        bad_request("base_url must be text", "base_url 必须是文本", "base_url")
    url = value.strip().rstrip("/")
    if not url:
        if channel_type == "demo":
            return ""
        bad_request(
            "an `openai` channel needs base_url, the OpenAI-style base including the version path, "
            "e.g. https://api.openai.com/v1",
            "`openai` 类型的渠道需要 base_url，即包含版本路径的 OpenAI 风格地址，例如 https://api.openai.com/v1",
            "base_url",
        )
    parts = _split_url(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        bad_request(
            f"base_url `{url}` must look like http(s)://host[:port][/path], e.g. https://api.openai.com/v1",
            f"base_url `{url}` 的格式应为 http(s)://host[:port][/path]，例如 https://api.openai.com/v1",
            "base_url",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        bad_request(
            f"base_url `{url}` must not carry a query, fragment or user:password; put the "
            f"credential in `credential` instead",
            f"base_url `{url}` 不能包含查询参数、片段或 user:password；请把凭据放在 `credential` 中",
            "base_url",
        )
    if parts.path.endswith("/chat/completions"):
        trimmed = url[: -len("/chat/completions")]
        bad_request(
            f"base_url `{url}` should stop before `/chat/completions` (Tollway appends it); use `{trimmed}`",
            f"base_url `{url}` 不应包含 `/chat/completions`（Tollway 会自动追加），请使用 `{trimmed}`",
            "base_url",
        )
    return url


def _split_url(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    return parts


def _encrypt(box: CredentialBox, credential: Any) -> str | None:
    if credential is None:
        return None
    if not isinstance(credential, str) or not credential.strip():
        bad_request(
            "credential must not be empty; pass null (CLI: --no-key) to remove it",
            "credential 不能为空；如需移除，请传 null（命令行：--no-key）",
            "credential",
        )
    # Pasted keys often carry a trailing newline, which would corrupt the Authorization header.
    return box.encrypt(credential.strip())


def _check_mapping(mapping: Any, models: list[str]) -> dict[str, str]:
    if not isinstance(mapping, dict):
        bad_request(
            "model_mapping must map requested model names to upstream names",
            "model_mapping 必须是请求模型名到上游模型名的映射",
            "model_mapping",
        )
    checked: dict[str, str] = {}
    for requested, upstream in mapping.items():
        requested_name = check_model_name(requested, param="model_mapping")
        if requested_name not in models:
            bad_request(
                f"model_mapping maps `{requested_name}`, which is not in this channel's models "
                f"({', '.join(models)}); add it to models or drop the mapping",
                f"model_mapping 映射了 `{requested_name}`，但它不在本渠道的模型列表"
                f"（{', '.join(models)}）中；请将其加入 models 或删除该映射",
                "model_mapping",
            )
        checked[requested_name] = check_model_name(upstream, param="model_mapping")
    return checked


def _check_group_list(values: Any) -> list[str]:
    if isinstance(values, str) or not isinstance(values, list | tuple):
        bad_request("groups must be a list of group names", "groups 必须是分组名称列表", "groups")
    names = list(dict.fromkeys(str(v).strip() for v in values if str(v).strip()))
    if not names:
        bad_request(
            "groups must name at least one group, e.g. default; to stop serving, disable the channel",
            "groups 必须至少包含一个分组，例如 default；如需停止服务，请禁用该渠道",
            "groups",
        )
    return names


def _require_groups(conn: Connection, names: list[str]) -> None:
    for group in names:
        require_group(conn, group, param="groups")


def _check_int(value: Any, *, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        bad_request(f"{param} must be a whole number", f"{param} 必须是整数", param)
    return value


def _check_weight(value: Any) -> int:
    weight = _check_int(value, param="weight")
    if weight < 1:
        bad_request(
            f"weight must be 1 or more (got {weight}); to stop routing to the channel, disable it",
            f"weight 必须不小于 1（当前为 {weight}）；如需停止向该渠道路由，请禁用它",
            "weight",
        )
    return weight


# --- rows -------------------------------------------------------------------------------------


def _find(conn: Connection, name: str) -> RowMapping | None:
    return conn.execute(select(channels).where(channels.c.name == name)).mappings().first()


def _require(conn: Connection, name: str) -> RowMapping:
    row = _find(conn, name)
    if row is None:
        not_found(
            f"channel `{name}` does not exist; see `tollway channels list`",
            f"渠道 `{name}` 不存在；请用 `tollway channels list` 查看",
            "name",
        )
    return row


def _duplicate(name: str) -> NoReturn:
    conflict(
        f"channel `{name}` already exists; change it with `tollway channels set {name}`",
        f"渠道 `{name}` 已存在；请用 `tollway channels set {name}` 修改",
        "name",
    )


def _to_dict(row: RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "type": row["type"],
        "base_url": row["base_url"],
        "has_credential": row["credential_encrypted"] is not None,
        "models": row["models"],
        "model_mapping": row["model_mapping"],
        "groups": row["groups"],
        "priority": row["priority"],
        "weight": row["weight"],
        "status": row["status"],
        "created_at": iso_from_ms(row["created_at_ms"]),
        "created_at_ms": row["created_at_ms"],
    }
