"""Parsing and checking shared by every admin service: names, money, lists, times, and the
bilingual errors they raise. Services stay short because every rule lives here once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import null as sql_null

from tollway.billing.money import MoneyError, nano_to_usd, usd_to_nano
from tollway.pipeline.errors import BAD_REQUEST, CONFLICT, NOT_FOUND, ErrorKind, GatewayError
from tollway.store.db import now_ms


class Unset:
    """Marks an update argument the caller did not pass, as opposed to None ("clear it")."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET = Unset()


# --- errors -----------------------------------------------------------------------------------


def fail(kind: ErrorKind, message_en: str, message_zh: str, param: str | None = None) -> NoReturn:
    raise GatewayError(kind, message_en, message_zh, param=param)


def bad_request(message_en: str, message_zh: str, param: str | None = None) -> NoReturn:
    fail(BAD_REQUEST, message_en, message_zh, param)


def not_found(message_en: str, message_zh: str, param: str | None = None) -> NoReturn:
    fail(NOT_FOUND, message_en, message_zh, param)


def conflict(message_en: str, message_zh: str, param: str | None = None) -> NoReturn:
    fail(CONFLICT, message_en, message_zh, param)


# --- names and lists --------------------------------------------------------------------------

# Names travel in URL paths (/api/users/{name}) and comma-separated CLI lists, so "/" and ","
# are out; whitespace and control characters only ever arrive by accident.
_BAD_NAME_CHARS = re.compile(r"[\s/,\x00-\x1f\x7f]")
# Model names legitimately contain "/" ("meta/llama-3") and ":" ("qwen2.5:7b").
_BAD_MODEL_CHARS = re.compile(r"[\s,\x00-\x1f\x7f]")


def check_name(value: Any, *, what: str, what_zh: str, param: str, max_len: int = 64) -> str:
    if not isinstance(value, str) or not value.strip():
        bad_request(f"{what} name must not be empty", f"{what_zh}名称不能为空", param)
    name = value.strip()
    if len(name) > max_len:
        bad_request(
            f"{what} name `{name[:20]}…` is longer than {max_len} characters; pick a shorter name",
            f"{what_zh}名称 `{name[:20]}…` 超过 {max_len} 个字符，请换一个更短的名称",
            param,
        )
    if _BAD_NAME_CHARS.search(name):
        bad_request(
            f"{what} name `{name}` may not contain spaces, `/` or `,`; use letters, digits, `-`, `_` or `.`",
            f"{what_zh}名称 `{name}` 不能包含空格、`/` 或 `,`，请使用字母、数字、`-`、`_` 或 `.`",
            param,
        )
    return name


def check_model_name(value: Any, *, param: str) -> str:
    if not isinstance(value, str) or not value.strip():
        bad_request("model name must not be empty", "模型名称不能为空", param)
    model = value.strip()
    if len(model) > 128:
        bad_request(
            f"model name `{model[:20]}…` is longer than 128 characters",
            f"模型名称 `{model[:20]}…` 超过 128 个字符",
            param,
        )
    if _BAD_MODEL_CHARS.search(model):
        bad_request(
            f"model name `{model}` may not contain spaces or `,`",
            f"模型名称 `{model}` 不能包含空格或 `,`",
            param,
        )
    return model


def check_model_list(values: Any, *, param: str, allow_none: bool = True) -> list[str] | None:
    """A list of model names, de-duplicated in order. None means "every model" where allowed."""
    if values is None:
        if allow_none:
            return None
        bad_request(f"{param} must list at least one model", f"{param} 必须至少包含一个模型", param)
    if isinstance(values, str) or not isinstance(values, list | tuple):
        bad_request(f"{param} must be a list of model names", f"{param} 必须是模型名称列表", param)
    models = list(dict.fromkeys(check_model_name(v, param=param) for v in values))
    if not models:
        hint_en = "; to allow every model, pass null (CLI: --all-models)" if allow_none else ""
        hint_zh = "；如需允许所有模型，请传 null（命令行：--all-models）" if allow_none else ""
        bad_request(
            f"{param} must name at least one model{hint_en}",
            f"{param} 必须至少包含一个模型{hint_zh}",
            param,
        )
    return models


def json_or_null(value: Any) -> Any:
    """Store "no list" as SQL NULL rather than JSON null, so `IS NULL` means what it says."""
    return sql_null() if value is None else value


def check_choice(value: Any, choices: tuple[str, ...], *, param: str) -> str:
    if value not in choices:
        options = ", ".join(choices)
        bad_request(
            f"{param} `{value}` is not valid; use one of: {options}",
            f"{param} `{value}` 无效，请使用以下之一：{options}",
            param,
        )
    return str(value)


# --- money ------------------------------------------------------------------------------------


def parse_usd(value: Any, *, param: str, allow_negative: bool = False) -> int:
    """A USD decimal string to exact nano-USD; never rounds."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        bad_request(
            f'{param} must be a USD amount written as a string, like "5" or "0.25"',
            f'{param} 必须是以字符串表示的美元金额，例如 "5" 或 "0.25"',
            param,
        )
    try:
        nano = usd_to_nano(value)
    except MoneyError:
        bad_request(
            f"{param} `{value}` is not an exact USD amount; use a decimal with at most 9 decimal places",
            f"{param} `{value}` 不是精确的美元金额，请使用最多 9 位小数的十进制数",
            param,
        )
    if nano < 0 and not allow_negative:
        bad_request(
            f"{param} `{value}` must not be negative",
            f"{param} `{value}` 不能为负数",
            param,
        )
    return nano


def usd_text(nano: int | None) -> str | None:
    """Plain decimal string ("5", "0.0015"): the one money format every *_usd field uses."""
    if nano is None:
        return None
    return format(nano_to_usd(nano), "f")


# --- times ------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def iso_from_ms(ms: int | None) -> str | None:
    """ "2026-12-03T17:00:00Z" (milliseconds appear only when they are not zero)."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def duration_ms(text: str) -> int | None:
    """ "15m", "2h", "7d", "30s", "1w" to milliseconds; None when it is not a duration."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def iso_to_ms(text: str) -> int | None:
    """ISO-8601 date or datetime to epoch ms; a naive value is UTC. None when unparseable."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(milliseconds=1)


def parse_time_point(text: Any, *, param: str, relative_to_future: bool) -> int:
    """ISO-8601, or a duration counted from now (forwards for expiries, backwards for "since")."""
    if isinstance(text, str):
        ms = duration_ms(text)
        if ms is not None:
            return now_ms() + ms if relative_to_future else now_ms() - ms
        ms = iso_to_ms(text)
        if ms is not None:
            return ms
    example = "30d" if relative_to_future else "15m"
    bad_request(
        f"{param} `{text}` is not a time; use ISO-8601 (2027-01-01 or 2027-01-01T12:00:00Z) "
        f"or a duration like `{example}` (s, m, h, d, w)",
        f"{param} `{text}` 不是有效时间，请使用 ISO-8601（2027-01-01 或 2027-01-01T12:00:00Z）"
        f"或时长，如 `{example}`（s、m、h、d、w）",
        param,
    )
