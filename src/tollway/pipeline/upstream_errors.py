"""Turns an upstream's error answer into a GatewayError the caller can act on, without ever
passing on the upstream's credentials or internal host names."""

from __future__ import annotations

import re

import orjson

from tollway.pipeline import errors as E
from tollway.pipeline.errors import GatewayError
from tollway.snapshot.model import ChannelView

_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
# IPv6, written the ways connection errors print it; a clock time (12:30:45) is not one.
_IPV6 = re.compile(
    r"\[[0-9a-f:.]+\](?::\d+)?"  # [fd00::5]:443
    r"|(?<![\w:])(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}(?![\w:])"  # all eight groups
    r"|(?<![\w:])(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?(?![\w:])"  # fe80::1
    r"|(?<![\w:])::[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*(?![\w:])",  # ::1
    re.IGNORECASE,
)
_HOST = re.compile(
    r"\b[\w-]+(?:\.[\w-]+)*\.(?:internal|local|lan|corp|intra|svc|cluster|example|com|net|org|io|ai|cn|dev|cloud)\b(?::\d+)?",
    re.IGNORECASE,
)


def scrub(text: str, channel: ChannelView) -> str:
    if channel.credential:
        text = text.replace(channel.credential, "[credential]")
    text = _URL.sub("[url]", text)
    text = _IPV6.sub("[address]", text)
    text = _IP.sub("[address]", text)
    return _HOST.sub("[host]", text)


def upstream_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        # Not cut here: a credential straddling the cut would escape the scrub. The caller
        # scrubs first and shortens after.
        return body[:65536].decode("utf-8", "replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    return ""


def from_upstream_status(status: int, body: bytes, channel: ChannelView) -> GatewayError:
    said = scrub(upstream_message(body), channel)[:300]
    reason = f"upstream answered HTTP {status}" + (f": {said}" if said else "")
    if status in (400, 404, 413, 422):
        return GatewayError(
            E.BAD_REQUEST,
            f"the upstream provider rejected the request: {said or f'HTTP {status}'}",
            f"上游服务拒绝了该请求：{said or f'HTTP {status}'}",
            extra={"reason": f"upstream answered HTTP {status}"},  # its words are in the message already
        )
    if status in (401, 403):
        return GatewayError(
            E.UPSTREAM_ERROR,
            "the upstream provider refused the gateway's credentials for this model; an admin must fix the channel",
            "上游服务拒绝了网关在此模型上的凭据；需要管理员修复渠道配置",
            extra={"reason": reason},
        )
    if status == 429:
        return GatewayError(
            E.UPSTREAM_ERROR,
            "the upstream provider is rate limiting the gateway; retry in a little while",
            "上游服务正在限流；请稍后重试",
            extra={"reason": reason},
        )
    return GatewayError(
        E.UPSTREAM_ERROR,
        f"the upstream provider failed (HTTP {status}); try again shortly",
        f"上游服务出错（HTTP {status}）；请稍后重试",
        extra={"reason": reason},
    )
