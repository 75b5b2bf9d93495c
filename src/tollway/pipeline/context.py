"""Everything one request carries through the pipeline, and what its log row is made from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.billing.ledger import Reservation
from tollway.pipeline.errors import GatewayError
from tollway.providers.base import Endpoint
from tollway.snapshot.model import ChannelView, KeyView, PriceView
from tollway.wire.usage import NONE, Usage


@dataclass(slots=True)
class RequestContext:
    request_id: str
    endpoint: Endpoint
    client_ip: str | None
    accept_language: str | None
    started_ns: int = field(default_factory=time.perf_counter_ns)
    created_at_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    inbound_format: str = "openai"
    raw_body: bytes = b""
    body_too_large: bool = False  # the body exceeded the size limit and was not read
    body: dict[str, Any] = field(default_factory=dict)
    key: KeyView | None = None
    model: str | None = None
    price: PriceView | None = None
    channels: tuple[ChannelView, ...] = ()
    channel: ChannelView | None = None
    upstream_model: str | None = None
    stream: bool = False
    client_wants_usage: bool = False
    estimate_nano: int = 0
    reservation: Reservation | None = None
    usage: Usage = field(default_factory=lambda: Usage(source=NONE))
    cost_nano: int = 0
    charged: bool = False
    charge_reason: str = ""
    status: int = 200
    error: GatewayError | None = None
    failure_reason: str | None = None
    first_byte_ns: int | None = None

    def elapsed_ms(self, at_ns: int | None = None) -> int:
        return ((at_ns or time.perf_counter_ns()) - self.started_ns) // 1_000_000

    def log_row(self) -> dict[str, Any]:
        key = self.key
        return {
            "request_id": self.request_id,
            "created_at_ms": self.created_at_ms,
            "user_id": key.user.id if key else None,
            "user_name": key.user.name if key else None,
            "key_id": key.id if key else None,
            "key_name": key.name if key else None,
            "key_masked": key.masked if key else None,
            "key_environment": key.environment if key else None,
            "key_project": key.project if key else None,
            "endpoint": self.endpoint.value,
            "inbound_format": self.inbound_format,
            "requested_model": self.model,
            "upstream_model": self.upstream_model,
            "channel_id": self.channel.id if self.channel else None,
            "channel_name": self.channel.name if self.channel else None,
            "is_stream": self.stream,
            "status_code": self.status,
            "error_code": self.error.code if self.error else None,
            "failure_reason": self.failure_reason,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cached_tokens": self.usage.cached_tokens,
            "usage_source": self.usage.source,
            "cost_nano": self.cost_nano,
            "charged": self.charged,
            "charge_reason": self.charge_reason,
            "latency_ms": self.elapsed_ms(),
            "ttft_ms": None if self.first_byte_ns is None else self.elapsed_ms(self.first_byte_ns),
            "client_ip": self.client_ip,
        }


def peek_model(raw_body: bytes) -> str | None:
    """For the log of a request refused before its body was parsed: which model it asked for."""
    try:
        body = orjson.loads(raw_body)
    except orjson.JSONDecodeError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model[:128] if isinstance(model, str) else None
