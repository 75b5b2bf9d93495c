"""The immutable in-memory view of config that the hot path reads. No database on the hot path:
a request only ever looks things up in the current Snapshot."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class GroupView:
    id: int
    name: str
    price_multiplier_ppm: int
    allowed_models: frozenset[str] | None  # None: every priced model


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    name: str
    status: str
    role: str
    group: GroupView


@dataclass(frozen=True, slots=True)
class KeyView:
    id: int
    name: str
    user: UserView
    masked: str
    status: str
    expires_at_ms: int | None
    spend_limit_nano: int | None
    allowed_models: frozenset[str] | None
    allowed_networks: tuple[IpNetwork, ...] | None
    environment: str
    project: str | None


@dataclass(frozen=True, slots=True)
class PriceView:
    model: str
    input_nano_per_mtok: int
    output_nano_per_mtok: int
    cached_input_nano_per_mtok: int | None
    per_request_nano: int | None


@dataclass(frozen=True, slots=True)
class ChannelView:
    id: int
    name: str
    type: str  # openai | demo
    base_url: str
    credential: str | None  # decrypted once at snapshot build; never logged
    models: frozenset[str]
    model_mapping: dict[str, str]
    groups: frozenset[str]
    priority: int
    weight: int

    def upstream_model(self, requested: str) -> str:
        return self.model_mapping.get(requested, requested)


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    keys_by_hash: dict[str, KeyView] = field(default_factory=dict)
    prices: dict[str, PriceView] = field(default_factory=dict)
    channels: tuple[ChannelView, ...] = ()
    # (group name, model) -> enabled channels serving it, highest priority first
    routes: dict[tuple[str, str], tuple[ChannelView, ...]] = field(default_factory=dict)
    # every model any enabled channel serves (for "did you mean" and for "not routed" messages)
    served_models: frozenset[str] = frozenset()
