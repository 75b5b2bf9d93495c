"""Adapter for OpenAI-compatible upstreams (OpenAI, DeepSeek, Moonshot, Groq, vLLM, Ollama, ...).

Inbound and upstream formats are the same, so this is the passthrough fast path: the body is
forwarded byte for byte unless the model is renamed or usage must be requested on a stream, and
responses are read only for what billing needs.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.providers.base import Endpoint, UpstreamRequest
from tollway.snapshot.model import ChannelView
from tollway.wire.sse import event_data
from tollway.wire.usage import Usage, usage_from_openai


def build_request(
    endpoint: Endpoint,
    channel: ChannelView,
    raw_body: bytes,
    body: dict[str, Any],
    *,
    upstream_model: str,
    stream: bool,
    client_wants_usage: bool,
) -> UpstreamRequest:
    changes: dict[str, Any] = {}
    if upstream_model != body.get("model"):
        changes["model"] = upstream_model
    if stream and not client_wants_usage:
        # Billing needs real usage: ask for it, and strip the extra chunk on the way back.
        options = body.get("stream_options")
        changes["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    payload = orjson.dumps({**body, **changes}) if changes else raw_body
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    if channel.credential:
        headers["Authorization"] = f"Bearer {channel.credential}"
    return UpstreamRequest(url=channel.base_url + endpoint.upstream_suffix, headers=headers, body=payload)


def response_usage(body: bytes) -> Usage | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return usage_from_openai(data.get("usage")) if isinstance(data, dict) else None


def client_wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class StreamInspector:
    """Reads each event of an OpenAI stream for usage, without re-encoding anything."""

    __slots__ = ("done", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.done = False

    def inspect(self, event: bytes) -> bool:
        """Returns True when the event is the usage-only chunk (no choices), which the caller
        strips if the client did not ask for usage. Sets `done` on [DONE]."""
        if b"[DONE]" in event and event_data(event) == b"[DONE]":
            self.done = True
            return False
        if b'"usage":{' not in event and b'"usage": {' not in event:
            return False
        payload = event_data(event)
        if payload is None:
            return False
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(data, dict):
            return False
        usage = usage_from_openai(data.get("usage"))
        if usage is not None:
            self.usage = usage
        return usage is not None and not data.get("choices")


def response_text(body: bytes) -> str:
    """The text of a non-streamed response (see openai_stream.streamed_text for streams)."""
    parts: list[str] = []
    choice_texts(body, "message", parts)
    return "".join(parts)


def choice_texts(payload: bytes, field: str, parts: list[str]) -> None:
    """Appends the texts in each choice's `field` (message or delta) and legacy `text`."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return
    for choice in data.get("choices") or () if isinstance(data, dict) else ():
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
        message = choice.get(field)
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                parts.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
