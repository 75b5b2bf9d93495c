"""Request-log queries for support work: "what happened to this key in the last hour?"

Rows are written by the gateway's log writer; this module only reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, select

from tollway.admin.validation import bad_request, iso_from_ms, not_found, parse_time_point, usd_text
from tollway.store.tables import request_logs, users

MAX_LIMIT = 1000


@dataclass
class LogFilter:
    start_ms: int | None = None  # inclusive
    end_ms: int | None = None  # exclusive
    user: str | None = None  # user name
    key_id: int | None = None
    model: str | None = None  # the model the client asked for
    status: int | str | None = None  # an HTTP status, "error" (>= 400) or "ok" (< 400)
    request_id: str | None = None
    limit: int = 100
    offset: int = 0


def parse_time(text: str, *, param: str = "time") -> int:
    """ISO-8601 (naive = UTC), or how long ago: "15m", "2h", "7d". `param` names the field
    in the error (e.g. "since")."""
    return parse_time_point(text, param=param, relative_to_future=False)


def query_logs(engine: Engine, f: LogFilter) -> list[dict[str, Any]]:
    """Matching rows, newest first."""
    _check_paging(f)
    with engine.connect() as conn:
        query = select(request_logs)
        if f.user is not None:
            user_id = conn.execute(select(users.c.id).where(users.c.name == f.user)).scalar()
            # By id when the user still exists (that is what the index covers); otherwise by
            # the name the log row kept.
            if user_id is not None:
                query = query.where(request_logs.c.user_id == user_id)
            else:
                query = query.where(request_logs.c.user_name == f.user)
        query = _apply_filters(query, f)
        query = query.order_by(request_logs.c.created_at_ms.desc(), request_logs.c.id.desc())
        rows = conn.execute(query.limit(f.limit).offset(f.offset)).mappings().all()
    return [_to_dict(row) for row in rows]


def get_log(engine: Engine, request_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        query = select(request_logs).where(request_logs.c.request_id == request_id)
        row = conn.execute(query).mappings().first()
    if row is None:
        not_found(
            f"no request `{request_id}` in the log; check the X-Request-Id header or error body, "
            f"or search with `tollway logs list`",
            f"日志中没有请求 `{request_id}`；请核对 X-Request-Id 响应头或错误正文，或用 `tollway logs list` 搜索",
            "request_id",
        )
    return _to_dict(row)


def _check_paging(f: LogFilter) -> None:
    if isinstance(f.limit, bool) or not isinstance(f.limit, int) or not 1 <= f.limit <= MAX_LIMIT:
        bad_request(
            f"limit must be between 1 and {MAX_LIMIT}; page with offset for more",
            f"limit 必须在 1 到 {MAX_LIMIT} 之间；更多结果请用 offset 分页",
            "limit",
        )
    if isinstance(f.offset, bool) or not isinstance(f.offset, int) or f.offset < 0:
        bad_request("offset must be 0 or more", "offset 必须不小于 0", "offset")


def _apply_filters(query: Select[Any], f: LogFilter) -> Select[Any]:
    if f.start_ms is not None:
        query = query.where(request_logs.c.created_at_ms >= f.start_ms)
    if f.end_ms is not None:
        query = query.where(request_logs.c.created_at_ms < f.end_ms)
    if f.key_id is not None:
        query = query.where(request_logs.c.key_id == f.key_id)
    if f.model is not None:
        query = query.where(request_logs.c.requested_model == f.model)
    if f.request_id is not None:
        query = query.where(request_logs.c.request_id == f.request_id)
    if f.status is not None:
        query = _apply_status(query, f.status)
    return query


def _apply_status(query: Select[Any], status: int | str) -> Select[Any]:
    text = str(status).strip().lower()
    if text == "error":
        return query.where(request_logs.c.status_code >= 400)
    if text == "ok":
        return query.where(request_logs.c.status_code < 400)
    if not isinstance(status, bool) and text.isdigit() and 100 <= int(text) <= 599:
        return query.where(request_logs.c.status_code == int(text))
    bad_request(
        f"status `{status}` is not valid; use an HTTP status like 500, `error` (400 and above) or `ok`",
        f"status `{status}` 无效；请使用 HTTP 状态码（如 500）、`error`（400 及以上）或 `ok`",
        "status",
    )


def _to_dict(row: Any) -> dict[str, Any]:
    # Column names are str subclasses (quoted_name), which orjson refuses as keys.
    entry = {str(name): value for name, value in row.items()}
    entry["created_at"] = iso_from_ms(row["created_at_ms"])
    entry["cost_usd"] = usd_text(row["cost_nano"])
    return entry
