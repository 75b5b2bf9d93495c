"""The decision steps of a request, each a plain function of the context and the snapshot
(no I/O), in the order the runner calls them. A step stops the request by raising GatewayError."""

from __future__ import annotations

import difflib
import ipaddress
import time
from collections.abc import Mapping
from typing import Any

import orjson

from tollway.accounts.keys import hash_secret, key_prefix, key_suffix, mask
from tollway.billing.prices import estimate_nano
from tollway.pipeline import errors as E
from tollway.pipeline.context import RequestContext
from tollway.pipeline.errors import GatewayError
from tollway.providers import openai_compat
from tollway.providers.base import Endpoint
from tollway.routing.select import candidates, pick_channel
from tollway.snapshot.model import KeyView, Snapshot

MAX_BODY_BYTES = 32 * 1024 * 1024


def presented_key(headers: Mapping[str, str]) -> str | None:
    """Bearer token, or the x-api-key / x-goog-api-key headers native SDKs send."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or None


def authenticate(ctx: RequestContext, snapshot: Snapshot, headers: Mapping[str, str]) -> None:
    secret = presented_key(headers)
    if not secret:
        raise GatewayError(
            E.MISSING_API_KEY,
            "no API key: send it as `Authorization: Bearer sk-...`",
            "缺少 API 密钥：请通过 `Authorization: Bearer sk-...` 发送",
        )
    key = snapshot.keys_by_hash.get(hash_secret(secret))
    if key is None:
        shown = mask(key_prefix(secret), key_suffix(secret)) if len(secret) > 12 else "(too short)"
        raise GatewayError(
            E.INVALID_API_KEY,
            f"the API key {shown} is not valid here; check for typos or create one with `tollway keys create`",
            f"API 密钥 {shown} 无效；请检查是否有误，或使用 `tollway keys create` 创建",
        )
    ctx.key = key
    if key.status != "active":
        raise GatewayError(
            E.DISABLED_API_KEY,
            f"the API key {key.masked} is disabled; ask its owner to enable it or use another key",
            f"API 密钥 {key.masked} 已被禁用；请联系所有者启用或换用其他密钥",
        )
    if key.expires_at_ms is not None and key.expires_at_ms <= time.time_ns() // 1_000_000:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(key.expires_at_ms / 1000))
        raise GatewayError(
            E.EXPIRED_API_KEY,
            f"the API key {key.masked} expired at {when}; create a new key or extend its expiry",
            f"API 密钥 {key.masked} 已于 {when} 过期；请创建新密钥或延长有效期",
        )
    if key.user.status != "active":
        raise GatewayError(
            E.USER_DISABLED,
            f"the account `{key.user.name}` that owns this key is disabled",
            f"此密钥所属账户 `{key.user.name}` 已被禁用",
        )
    _check_ip(ctx, key)


def _check_ip(ctx: RequestContext, key: KeyView) -> None:
    if key.allowed_networks is None:
        return
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(ctx.client_ip or "")
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5 on a dual-stack socket
    if address is None or not any(address in network for network in key.allowed_networks):
        shown = ctx.client_ip or "an unknown address"
        raise GatewayError(
            E.IP_NOT_ALLOWED,
            f"requests from {shown} are not allowed for the API key {key.masked}; "
            "its owner can add this address to the key's IP allowlist",
            f"API 密钥 {key.masked} 不允许来自 {shown} 的请求；密钥所有者可将此地址加入 IP 白名单",
        )


def parse_body(ctx: RequestContext) -> None:
    if ctx.body_too_large:
        limit = MAX_BODY_BYTES // (1024 * 1024)
        raise GatewayError(
            E.REQUEST_TOO_LARGE,
            f"the request body is larger than {limit} MiB; send smaller inputs (e.g. link images instead of "
            "embedding them)",
            f"请求体超过 {limit} MiB；请减小输入（例如用链接代替内嵌图片）",
        )
    try:
        body = orjson.loads(ctx.raw_body)
    except orjson.JSONDecodeError:
        raise E.invalid_json_error() from None
    if not isinstance(body, dict):
        raise E.body_not_object_error()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(
            E.BAD_REQUEST,
            '`model` is required: name the model to use, e.g. "model": "gpt-4o-mini" (GET /v1/models lists them)',
            '缺少 `model`：请指定模型，例如 "model": "gpt-4o-mini"（GET /v1/models 可列出可用模型）',
            param="model",
        )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise GatewayError(
            E.BAD_REQUEST, "`stream` must be true or false", "`stream` 必须是 true 或 false", param="stream"
        )
    if stream and not ctx.endpoint.streams:
        raise GatewayError(E.BAD_REQUEST, "this endpoint does not stream", "此接口不支持流式输出", param="stream")
    _check_required_input(ctx.endpoint, body)
    ctx.body = body
    ctx.model = model
    ctx.stream = bool(stream)
    ctx.client_wants_usage = openai_compat.client_wants_usage(body)


_REQUIRED_INPUT: dict[Endpoint, tuple[str, type | tuple[type, ...]]] = {
    Endpoint.CHAT: ("messages", list),
    Endpoint.COMPLETIONS: ("prompt", (str, list)),
    Endpoint.EMBEDDINGS: ("input", (str, list)),
}


def _check_required_input(endpoint: Endpoint, body: dict[str, Any]) -> None:
    field, kind = _REQUIRED_INPUT[endpoint]
    value = body.get(field)
    if not isinstance(value, kind) or (isinstance(value, list) and not value):
        raise GatewayError(
            E.BAD_REQUEST,
            f"`{field}` is required and must not be empty",
            f"缺少 `{field}`，且不能为空",
            param=field,
        )


def usable_models(snapshot: Snapshot, key: KeyView) -> list[str]:
    """Models this key may call right now: priced, routed to its group, allowed by key and group."""
    group = key.user.group
    names = []
    for model in snapshot.prices:
        if key.allowed_models is not None and model not in key.allowed_models:
            continue
        if group.allowed_models is not None and model not in group.allowed_models:
            continue
        if (group.name, model) in snapshot.routes:
            names.append(model)
    return sorted(names)


def _suggest(model: str, names: list[str]) -> str:
    close = difflib.get_close_matches(model, names, n=3, cutoff=0.5)
    if not close:  # "GPT-4O" → "gpt-4o": compare case-folded, but name the real model
        by_folded = {n.lower(): n for n in names}
        close = [by_folded[c] for c in difflib.get_close_matches(model.lower(), list(by_folded), n=3, cutoff=0.5)]
    return f" — did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""


def resolve_model(ctx: RequestContext, snapshot: Snapshot) -> None:
    """Explains exactly why a model cannot be used: unknown, unpriced, not for this key, not for
    this group, or priced but with no channel."""
    key, model = ctx.key, ctx.model
    assert key is not None and model is not None
    group = key.user.group
    price = snapshot.prices.get(model)
    if price is None:
        if model in snapshot.served_models:
            raise GatewayError(
                E.MODEL_NOT_FOUND,
                f"model `{model}` is served by a channel but has no price yet, so it cannot be billed; "
                f"an admin must set one (`tollway prices set {model} --input ... --output ...`)",
                f"模型 `{model}` 已有渠道提供但尚未定价，无法计费；请管理员设置价格（`tollway prices set {model} ...`）",
                param="model",
            )
        hint = _suggest(model, usable_models(snapshot, key))
        raise GatewayError(
            E.MODEL_NOT_FOUND,
            f"model `{model}` does not exist here{hint} (GET /v1/models lists the models this key can use)",
            f"此处不存在模型 `{model}`{hint.replace(' — did you mean', '，您是否想用').replace('?', '？')}"
            "（GET /v1/models 可列出此密钥可用的模型）",
            param="model",
        )
    if key.allowed_models is not None and model not in key.allowed_models:
        allowed = ", ".join(sorted(key.allowed_models)) or "none"
        raise GatewayError(
            E.MODEL_NOT_ALLOWED_FOR_KEY,
            f"the API key {key.masked} is limited to models [{allowed}]; `{model}` is not one of them",
            f"API 密钥 {key.masked} 仅限使用模型 [{allowed}]，不包括 `{model}`",
            param="model",
        )
    if group.allowed_models is not None and model not in group.allowed_models:
        raise GatewayError(
            E.MODEL_NOT_IN_GROUP,
            f"model `{model}` is not available to the group `{group.name}` this key's owner belongs to; "
            "an admin can add it to the group or move the user",
            f"模型 `{model}` 不对用户组 `{group.name}` 开放；管理员可将其加入该组或调整用户分组",
            param="model",
        )
    routes = candidates(snapshot, group.name, model)
    if not routes:
        if model in snapshot.served_models:
            raise GatewayError(
                E.MODEL_NOT_IN_GROUP,
                f"model `{model}` is not offered to the group `{group.name}`: no channel serving it allows that group",
                f"模型 `{model}` 未向用户组 `{group.name}` 开放：没有允许该组的渠道提供此模型",
                param="model",
            )
        raise GatewayError(
            E.NO_AVAILABLE_CHANNEL,
            f"no enabled channel serves model `{model}` right now; try again later or ask an admin",
            f"当前没有可用渠道提供模型 `{model}`；请稍后再试或联系管理员",
        )
    ctx.price = price
    ctx.channels = routes


def estimate(ctx: RequestContext, default_max_output_tokens: int) -> None:
    """The hold placed before the call. Prompt tokens: one per 3 bytes of body, which is above
    the real count for ordinary text since JSON framing and words both take several bytes a
    token. Output: the caller's own max_tokens, else the configured default."""
    assert ctx.price is not None and ctx.key is not None
    prompt = len(ctx.raw_body) // 3 + 8
    output = 0
    if ctx.endpoint is not Endpoint.EMBEDDINGS:
        requested = ctx.body.get("max_completion_tokens") or ctx.body.get("max_tokens")
        output = requested if isinstance(requested, int) and requested > 0 else default_max_output_tokens
        choices = ctx.body.get("n")
        if isinstance(choices, int) and choices > 1:
            output *= choices
    ctx.estimate_nano = estimate_nano(ctx.price, prompt, output, ctx.key.user.group.price_multiplier_ppm)


def route(ctx: RequestContext) -> None:
    channel = pick_channel(ctx.channels)
    assert channel is not None and ctx.model is not None
    ctx.channel = channel
    ctx.upstream_model = channel.upstream_model(ctx.model)
