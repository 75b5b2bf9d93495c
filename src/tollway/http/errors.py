"""Render a GatewayError as the OpenAI-shaped JSON error body, for every HTTP surface.

The admin API and the relay both answer errors through `error_response`, so a client sees one
shape everywhere: {"error": {"message", "type", "param", "code", "request_id"}}.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from tollway.pipeline.errors import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    REQUEST_TOO_LARGE,
    GatewayError,
    body_not_object_error,
)

REQUEST_ID_HEADER = "X-Request-Id"


_ids = random.Random()  # seeded from the OS once; ids must be unique, not unguessable


def new_request_id() -> str:
    """`req_` + 12 hex digits of the time in ms + 12 random hex digits.

    Time first, so ids sort by time and the unique indexes on request ids (request_logs,
    ledger_entries) grow at their right edge instead of touching a random page per insert: that
    cut the database writes of a batch commit several times over (bench/run.py, strace).
    Not `secrets`: os.urandom is a system call per request (tens of microseconds on some hosts).
    """
    return f"req_{time.time_ns() // 1_000_000:012x}{_ids.getrandbits(48):012x}"


def error_body(err: GatewayError, *, request_id: str, accept_language: str | None) -> dict[str, Any]:
    return {
        "error": {
            "message": err.message(accept_language),
            "type": err.kind.type,
            "param": err.param,
            "code": err.code,
            "request_id": request_id,
        }
    }


def error_response(err: GatewayError, *, request_id: str, accept_language: str | None) -> web.Response:
    body = orjson.dumps(error_body(err, request_id=request_id, accept_language=accept_language))
    return web.Response(
        body=body,
        status=err.status,
        content_type="application/json",
        headers={REQUEST_ID_HEADER: request_id},
    )


# --- Errors the HTTP layer itself raises (not a pipeline step) ---------------------------


def body_too_large_error() -> GatewayError:
    return GatewayError(REQUEST_TOO_LARGE, "the request body is too large", "请求体过大")


def path_not_found_error(path: str) -> GatewayError:
    return GatewayError(
        NOT_FOUND,
        f"no endpoint at `{path}`; see /api/openapi.json for the list of endpoints",
        f"`{path}` 不存在；可用接口见 /api/openapi.json",
    )


def method_not_allowed_error(method: str, path: str, allowed: set[str] | frozenset[str]) -> GatewayError:
    listed = ", ".join(sorted(allowed)) or "none"
    return GatewayError(
        METHOD_NOT_ALLOWED,
        f"`{method} {path}` is not supported; this path accepts: {listed}",
        f"`{path}` 不支持 {method} 方法；可用方法：{listed}",
    )


def internal_error() -> GatewayError:
    # Deliberately says nothing about the cause: details go to the server log only.
    return GatewayError(
        INTERNAL_ERROR,
        "internal error; the request id identifies it in the server log",
        "服务器内部错误；可凭请求 ID 在服务器日志中查找原因",
    )


# --- Pydantic validation failures -> one bilingual BAD_REQUEST ----------------------------

# Problem phrases keyed by pydantic error type. English reads after "field `x` ", Chinese after
# "字段 `x` ". `{...}` placeholders are filled from the pydantic error context.
_PROBLEMS: dict[str, tuple[str, str]] = {
    "missing": ("is required", "是必填项"),
    "extra_forbidden": ("is not a known field", "不是可识别的字段"),
    "string_type": ("must be a string", "必须是字符串"),
    "int_type": ("must be an integer", "必须是整数"),
    "int_parsing": ("must be an integer", "必须是整数"),
    "int_from_float": ("must be a whole number", "必须是整数"),
    "bool_type": ("must be true or false", "必须是 true 或 false"),
    "bool_parsing": ("must be true or false", "必须是 true 或 false"),
    "list_type": ("must be a list", "必须是列表"),
    "dict_type": ("must be an object", "必须是对象"),
    "literal_error": ("must be one of: {expected}", "必须是以下之一：{expected}"),
    "enum": ("must be one of: {expected}", "必须是以下之一：{expected}"),
    "greater_than_equal": ("must be at least {ge}", "不能小于 {ge}"),
    "greater_than": ("must be greater than {gt}", "必须大于 {gt}"),
    "less_than_equal": ("must be at most {le}", "不能大于 {le}"),
    "less_than": ("must be less than {lt}", "必须小于 {lt}"),
    "string_too_short": ("must not be empty", "不能为空"),
    "string_too_long": ("must be at most {max_length} characters", "长度不能超过 {max_length} 个字符"),
    "too_short": ("must have at least {min_length} item(s)", "至少需要 {min_length} 项"),
    "too_long": ("must have at most {max_length} item(s)", "最多只能有 {max_length} 项"),
    # Raised by our own validators (see http/admin_schemas.py).
    "null_not_allowed": (
        "must not be null; leave the field out to keep its current value",
        "不能为 null；如需保持原值，请省略该字段",
    ),
    "money_as_string": (
        'must be a decimal string such as "0.25", not a JSON number, so the amount stays exact',
        '必须是十进制字符串（例如 "0.25"），不能是 JSON 数字，以保证金额精确',
    ),
    "status_filter": (
        'must be an HTTP status code, "error" (>= 400) or "ok" (< 400)',
        '必须是 HTTP 状态码、"error"（>= 400）或 "ok"（< 400）',
    ),
}


def _fill(template: str, ctx: dict[str, Any] | None) -> str:
    try:
        return template.format(**(ctx or {}))
    except (KeyError, IndexError, ValueError):
        return template


def validation_error(exc: ValidationError, *, where: str = "body") -> GatewayError:
    """One BAD_REQUEST naming every bad field and its problem, in English and Chinese.

    `where` is "body" (JSON fields) or "query" (query-string parameters); it only changes the
    wording so the caller knows where to look.
    """
    label_en, label_zh = ("query parameter", "查询参数") if where == "query" else ("field", "字段")
    parts_en: list[str] = []
    parts_zh: list[str] = []
    first_param: str | None = None
    for item in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in item["loc"])
        if not loc:
            # The body itself was the wrong type (e.g. a JSON list instead of an object).
            err = body_not_object_error()
            parts_en.append(err.message_en)
            parts_zh.append(err.message_zh)
            continue
        first_param = first_param or loc
        ctx = item.get("ctx")
        known = _PROBLEMS.get(item["type"])
        if known:
            en, zh = _fill(known[0], ctx), _fill(known[1], ctx)
        else:
            en = str(item["msg"]).rstrip(".")
            zh = f"取值无效（{en}）"
        parts_en.append(f"{label_en} `{loc}` {en}")
        parts_zh.append(f"{label_zh} `{loc}` {zh}")
    return GatewayError(BAD_REQUEST, "; ".join(parts_en), "；".join(parts_zh), param=first_param)
