from __future__ import annotations

import ipaddress
import random
import time
from collections import Counter

import orjson
import pytest
from multidict import CIMultiDict

from tollway.accounts.keys import generate_api_key, hash_secret, key_prefix, key_suffix, mask
from tollway.billing.prices import estimate_nano
from tollway.pipeline import errors as E
from tollway.pipeline import steps
from tollway.pipeline.context import RequestContext
from tollway.pipeline.errors import GatewayError
from tollway.providers.base import Endpoint
from tollway.routing import select
from tollway.snapshot.model import ChannelView, GroupView, KeyView, PriceView, Snapshot, UserView

SECRET = generate_api_key()
DEFAULT = GroupView(id=1, name="default", price_multiplier_ppm=1_000_000, allowed_models=None)
VIP = GroupView(id=2, name="vip", price_multiplier_ppm=500_000, allowed_models=frozenset({"gpt-4o", "DeepSeek-V3"}))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def user(group: GroupView = DEFAULT, status: str = "active") -> UserView:
    return UserView(id=10, name="alice", status=status, role="user", group=group)


def key(
    *,
    owner: UserView | None = None,
    status: str = "active",
    expires_at_ms: int | None = None,
    allowed_models: set[str] | None = None,
    networks: list[str] | None = None,
) -> KeyView:
    return KeyView(
        id=5,
        name="ci",
        user=owner or user(),
        masked=mask(key_prefix(SECRET), key_suffix(SECRET)),
        status=status,
        expires_at_ms=expires_at_ms,
        spend_limit_nano=None,
        allowed_models=None if allowed_models is None else frozenset(allowed_models),
        allowed_networks=None if networks is None else tuple(ipaddress.ip_network(n) for n in networks),
        environment="prod",
        project=None,
    )


def price(model: str, input_usd: int = 2, output_usd: int = 8) -> PriceView:
    return PriceView(model, input_usd * 10**9, output_usd * 10**9, None, None)


def chan(
    cid: int, models: set[str], groups: set[str], priority: int = 0, weight: int = 1, mapping: dict | None = None
) -> ChannelView:  # type: ignore[type-arg]
    return ChannelView(
        id=cid,
        name=f"ch{cid}",
        type="openai",
        base_url="http://127.0.0.1:9/v1",
        credential=None,
        models=frozenset(models),
        model_mapping=mapping or {},
        groups=frozenset(groups),
        priority=priority,
        weight=weight,
    )


def snapshot(k: KeyView, channels: list[ChannelView], priced: list[str]) -> Snapshot:
    routes: dict[tuple[str, str], list[ChannelView]] = {}
    for c in channels:
        for g in c.groups:
            for m in c.models:
                routes.setdefault((g, m), []).append(c)
    return Snapshot(
        version=1,
        keys_by_hash={hash_secret(SECRET): k},
        prices={m: price(m) for m in priced},
        channels=tuple(channels),
        routes={rk: tuple(sorted(v, key=lambda c: -c.priority)) for rk, v in routes.items()},
        served_models=frozenset(m for c in channels for m in c.models),
    )


STANDARD_CHANNELS = [
    chan(1, {"gpt-4o", "gpt-4o-mini", "DeepSeek-V3", "alias"}, {"default", "vip"}, mapping={"alias": "gpt-4o-mini"}),
    chan(2, {"vip-only"}, {"vip"}),
    chan(3, {"unpriced-model"}, {"default"}),
]
STANDARD_PRICED = ["gpt-4o", "gpt-4o-mini", "DeepSeek-V3", "alias", "vip-only", "nowhere"]


def ctx(
    endpoint: Endpoint = Endpoint.CHAT, client_ip: str | None = "127.0.0.1", body: dict | None = None
) -> RequestContext:  # type: ignore[type-arg]
    c = RequestContext(request_id="req-1", endpoint=endpoint, client_ip=client_ip, accept_language=None)
    if body is not None:
        c.raw_body = orjson.dumps(body)
    return c


def auth_headers() -> CIMultiDict[str]:
    return CIMultiDict({"Authorization": f"Bearer {SECRET}"})


def authenticate(k: KeyView, client_ip: str | None = "127.0.0.1") -> RequestContext:
    c = ctx(client_ip=client_ip)
    steps.authenticate(c, snapshot(k, STANDARD_CHANNELS, STANDARD_PRICED), auth_headers())
    return c


def expect(kind: E.ErrorKind, call, *args) -> GatewayError:  # type: ignore[no-untyped-def]
    with pytest.raises(GatewayError) as info:
        call(*args)
    err = info.value
    assert err.kind is kind
    assert err.code == kind.code and err.status == kind.status
    assert err.message_en and err.message_zh and err.message_en != err.message_zh
    return err


# --- presenting the key ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {SECRET}"},
        {"authorization": f"bearer  {SECRET} "},
        {"AUTHORIZATION": f"BEARER {SECRET}"},
        {"x-api-key": SECRET},
        {"X-Api-Key": SECRET},
        {"x-goog-api-key": SECRET},
        {"Authorization": "Basic dXNlcjpwYXNz", "x-api-key": SECRET},
        {"Authorization": "Bearer ", "x-goog-api-key": SECRET},
    ],
)
def test_key_header_variants(headers: dict[str, str]) -> None:
    assert steps.presented_key(CIMultiDict(headers)) == SECRET
    c = ctx()
    steps.authenticate(c, snapshot(key(), [], []), CIMultiDict(headers))
    assert c.key is not None and c.key.id == 5


def test_bearer_wins_over_other_headers() -> None:
    headers = CIMultiDict({"Authorization": f"Bearer {SECRET}", "x-api-key": "sk-other"})
    assert steps.presented_key(headers) == SECRET


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Bearer   "}, {"x-api-key": ""}]
)
def test_missing_key(headers: dict[str, str]) -> None:
    err = expect(E.MISSING_API_KEY, steps.authenticate, ctx(), snapshot(key(), [], []), CIMultiDict(headers))
    assert "Authorization: Bearer" in err.message_en


def test_unknown_key_is_masked_in_the_message() -> None:
    other = generate_api_key()
    err = expect(
        E.INVALID_API_KEY,
        steps.authenticate,
        ctx(),
        snapshot(key(), [], []),
        CIMultiDict({"Authorization": f"Bearer {other}"}),
    )
    assert other not in err.message_en and other not in err.message_zh and other not in str(err)
    assert mask(other[:7], other[-4:]) in err.message_en
    assert "tollway keys create" in err.message_en


def test_short_unknown_key_is_not_echoed() -> None:
    err = expect(
        E.INVALID_API_KEY, steps.authenticate, ctx(), snapshot(key(), [], []), CIMultiDict({"x-api-key": "sk-tiny"})
    )
    assert "sk-tiny" not in err.message_en
    assert "(too short)" in err.message_en


def test_disabled_key() -> None:
    err = expect(E.DISABLED_API_KEY, authenticate, key(status="disabled"))
    assert key().masked in err.message_en
    assert SECRET not in err.message_en


def test_expired_key_names_the_expiry_time() -> None:
    at = 1_700_000_000_000  # 2023-11-14 22:13 UTC
    err = expect(E.EXPIRED_API_KEY, authenticate, key(expires_at_ms=at))
    assert "2023-11-14 22:13 UTC" in err.message_en


def test_key_expiring_later_is_accepted() -> None:
    c = authenticate(key(expires_at_ms=now_ms() + 60_000))
    assert c.key is not None


def test_key_expiring_right_now_is_expired() -> None:
    expect(E.EXPIRED_API_KEY, authenticate, key(expires_at_ms=now_ms()))


def test_disabled_user() -> None:
    err = expect(E.USER_DISABLED, authenticate, key(owner=user(status="disabled")))
    assert "`alice`" in err.message_en


def test_the_key_is_on_the_context_even_when_refused() -> None:
    # The request log needs to know whose key it was.
    c = ctx()
    with pytest.raises(GatewayError):
        steps.authenticate(c, snapshot(key(status="disabled"), [], []), auth_headers())
    assert c.key is not None and c.key.id == 5


# --- IP allowlist ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("networks", "client_ip"),
    [
        (["10.0.0.0/8"], "10.200.3.4"),
        (["192.168.1.7/32"], "192.168.1.7"),
        (["172.16.0.0/12", "203.0.113.0/24"], "203.0.113.99"),
        (["2001:db8::/32"], "2001:db8:abcd::1"),
        (["::1/128"], "::1"),
        (["10.0.0.0/8", "2001:db8::/32"], "2001:db8::5"),
    ],
)
def test_ip_allowed(networks: list[str], client_ip: str) -> None:
    assert authenticate(key(networks=networks), client_ip=client_ip).key is not None


@pytest.mark.parametrize(
    ("networks", "client_ip"),
    [
        (["10.0.0.0/8"], "11.0.0.1"),
        (["192.168.1.7/32"], "192.168.1.8"),
        (["2001:db8::/32"], "2001:db9::1"),
        (["10.0.0.0/8"], "::1"),
        (["::/0"], "127.0.0.1"),  # an IPv6 range never matches an IPv4 client
        (["10.0.0.0/8"], "not-an-ip"),
        (["10.0.0.0/8"], ""),
        (["10.0.0.0/8"], None),
    ],
)
def test_ip_refused(networks: list[str], client_ip: str | None) -> None:
    err = expect(E.IP_NOT_ALLOWED, authenticate, key(networks=networks), client_ip)
    assert "IP allowlist" in err.message_en
    if client_ip:
        assert client_ip in err.message_en


def test_no_allowlist_allows_any_address() -> None:
    assert authenticate(key(), client_ip=None).key is not None
    assert authenticate(key(), client_ip="garbage").key is not None


# --- body ------------------------------------------------------------------------------------


def test_parse_body_fills_the_context() -> None:
    c = ctx(
        body={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    steps.parse_body(c)
    assert (c.model, c.stream, c.client_wants_usage) == ("gpt-4o", True, True)
    assert c.body["messages"][0]["content"] == "x"


def test_stream_null_means_not_streaming() -> None:
    c = ctx(body={"model": "gpt-4o", "messages": [1], "stream": None})
    steps.parse_body(c)
    assert c.stream is False and c.client_wants_usage is False


@pytest.mark.parametrize(
    ("endpoint", "raw", "param", "needle"),
    [
        (Endpoint.CHAT, b"{nope", None, "not valid JSON"),
        (Endpoint.CHAT, b"[]", None, "JSON object"),
        (Endpoint.CHAT, b'{"messages":[1]}', "model", "`model` is required"),
        (Endpoint.CHAT, b'{"model":"","messages":[1]}', "model", "`model` is required"),
        (Endpoint.CHAT, b'{"model":7,"messages":[1]}', "model", "`model` is required"),
        (Endpoint.CHAT, b'{"model":"m","messages":[1],"stream":"yes"}', "stream", "true or false"),
        (Endpoint.EMBEDDINGS, b'{"model":"m","input":"x","stream":true}', "stream", "does not stream"),
        (Endpoint.CHAT, b'{"model":"m"}', "messages", "`messages` is required"),
        (Endpoint.CHAT, b'{"model":"m","messages":[]}', "messages", "must not be empty"),
        (Endpoint.CHAT, b'{"model":"m","messages":"hi"}', "messages", "`messages`"),
        (Endpoint.COMPLETIONS, b'{"model":"m","prompt":5}', "prompt", "`prompt`"),
        (Endpoint.EMBEDDINGS, b'{"model":"m","input":[]}', "input", "`input`"),
    ],
)
def test_bad_bodies(endpoint: Endpoint, raw: bytes, param: str | None, needle: str) -> None:
    c = ctx(endpoint)
    c.raw_body = raw
    err = expect(E.BAD_REQUEST, steps.parse_body, c)
    assert err.param == param
    assert needle in err.message_en


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        (Endpoint.COMPLETIONS, {"model": "m", "prompt": "Say hi"}),
        (Endpoint.COMPLETIONS, {"model": "m", "prompt": ["a", "b"], "stream": True}),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": "text"}),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": [[1, 2, 3]]}),
    ],
)
def test_good_bodies_per_endpoint(endpoint: Endpoint, body: dict) -> None:  # type: ignore[type-arg]
    c = ctx(endpoint, body=body)
    steps.parse_body(c)
    assert c.model == "m"


# --- model resolution ---------------------------------------------------------------------------


def resolve(
    k: KeyView, model: str, channels: list[ChannelView] | None = None, priced: list[str] | None = None
) -> RequestContext:
    c = ctx()
    c.key, c.model = k, model
    steps.resolve_model(
        c,
        snapshot(k, STANDARD_CHANNELS if channels is None else channels, STANDARD_PRICED if priced is None else priced),
    )
    return c


def test_resolve_sets_price_and_routes() -> None:
    c = resolve(key(), "gpt-4o")
    assert c.price is not None and c.price.model == "gpt-4o"
    assert [ch.id for ch in c.channels] == [1]


def test_unknown_model_suggests_close_names() -> None:
    err = expect(E.MODEL_NOT_FOUND, resolve, key(), "gpt4o")
    assert err.param == "model"
    assert "model `gpt4o` does not exist here — did you mean `gpt-4o`" in err.message_en
    assert "GET /v1/models" in err.message_en
    assert "您是否想用 `gpt-4o`" in err.message_zh


def test_unknown_model_without_a_close_name_has_no_hint() -> None:
    err = expect(E.MODEL_NOT_FOUND, resolve, key(), "zzzzzz-totally-different")
    assert "did you mean" not in err.message_en


def test_suggestions_only_name_models_the_key_may_use() -> None:
    # vip-only is priced and routed, but only for the vip group; this key is in default.
    err = expect(E.MODEL_NOT_FOUND, resolve, key(), "vip-onl")
    assert "vip-only" not in err.message_en
    err = expect(E.MODEL_NOT_FOUND, resolve, key(allowed_models={"gpt-4o-mini"}), "gpt4o")
    assert "`gpt-4o-mini`" in err.message_en
    assert "`gpt-4o`" not in err.message_en


def test_case_insensitive_suggestion_names_the_real_model() -> None:
    err = expect(E.MODEL_NOT_FOUND, resolve, key(), "DEEPSEEK-V3")
    assert "did you mean `DeepSeek-V3`?" in err.message_en


def test_served_but_unpriced_model_says_an_admin_must_price_it() -> None:
    err = expect(E.MODEL_NOT_FOUND, resolve, key(), "unpriced-model")
    assert "has no price yet" in err.message_en
    assert "tollway prices set unpriced-model" in err.message_en


def test_key_allowlist() -> None:
    err = expect(E.MODEL_NOT_ALLOWED_FOR_KEY, resolve, key(allowed_models={"gpt-4o-mini", "alias"}), "gpt-4o")
    assert (
        f"the API key {key().masked} is limited to models [alias, gpt-4o-mini]; `gpt-4o` is not one of them"
        == err.message_en
    )
    assert err.param == "model"


def test_empty_key_allowlist_says_none() -> None:
    err = expect(E.MODEL_NOT_ALLOWED_FOR_KEY, resolve, key(allowed_models=set()), "gpt-4o")
    assert "[none]" in err.message_en


def test_group_allowlist() -> None:
    err = expect(E.MODEL_NOT_IN_GROUP, resolve, key(owner=user(VIP)), "gpt-4o-mini")
    assert "group `vip`" in err.message_en


def test_key_allowlist_is_checked_before_group_allowlist() -> None:
    expect(E.MODEL_NOT_ALLOWED_FOR_KEY, resolve, key(owner=user(VIP), allowed_models={"gpt-4o"}), "gpt-4o-mini")


def test_allowed_everywhere_passes() -> None:
    c = resolve(key(owner=user(VIP), allowed_models={"gpt-4o"}), "gpt-4o")
    assert c.price is not None


def test_priced_and_served_but_not_for_this_group() -> None:
    err = expect(E.MODEL_NOT_IN_GROUP, resolve, key(), "vip-only")
    assert "no channel serving it allows that group" in err.message_en
    assert "`default`" in err.message_en


def test_priced_but_no_channel_at_all() -> None:
    err = expect(E.NO_AVAILABLE_CHANNEL, resolve, key(), "nowhere")
    assert err.kind.retryable
    assert "no enabled channel serves model `nowhere`" in err.message_en


def test_resolve_keeps_priority_order_of_routes() -> None:
    channels = [chan(1, {"gpt-4o"}, {"default"}, priority=1), chan(2, {"gpt-4o"}, {"default"}, priority=9)]
    c = resolve(key(), "gpt-4o", channels=channels, priced=["gpt-4o"])
    assert [ch.id for ch in c.channels] == [2, 1]


def test_usable_models() -> None:
    k = key(owner=user(VIP), allowed_models={"gpt-4o", "vip-only", "DeepSeek-V3"})
    snap = snapshot(k, STANDARD_CHANNELS, STANDARD_PRICED)
    # vip-only: not in the vip group's allowlist; unpriced-model: no price; nowhere: no channel.
    assert steps.usable_models(snap, k) == ["DeepSeek-V3", "gpt-4o"]
    assert steps.usable_models(snap, key()) == ["DeepSeek-V3", "alias", "gpt-4o", "gpt-4o-mini"]


# --- estimate and route ---------------------------------------------------------------------------


def estimated(
    body: dict, endpoint: Endpoint = Endpoint.CHAT, group: GroupView = DEFAULT, default_out: int = 1000
) -> tuple[int, int]:  # type: ignore[type-arg]
    c = ctx(endpoint, body=body)
    c.body = body
    c.key = key(owner=user(group))
    c.price = price("gpt-4o")
    steps.estimate(c, default_out)
    return c.estimate_nano, len(c.raw_body) // 3 + 8


@pytest.mark.parametrize(
    ("extra", "output"),
    [
        ({}, 1000),
        ({"max_tokens": 50}, 50),
        ({"max_completion_tokens": 70}, 70),
        ({"max_completion_tokens": 70, "max_tokens": 50}, 70),
        ({"max_tokens": 0}, 1000),
        ({"max_tokens": -5}, 1000),
        ({"max_tokens": "50"}, 1000),
        ({"max_tokens": 50, "n": 3}, 150),
        ({"n": 2}, 2000),
        ({"max_tokens": 50, "n": 1}, 50),
        ({"max_tokens": 50, "n": 0}, 50),
    ],
)
def test_estimate_output_tokens(extra: dict, output: int) -> None:  # type: ignore[type-arg]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], **extra}
    hold, prompt = estimated(body)
    assert hold == estimate_nano(price("gpt-4o"), prompt, output, 1_000_000)
    assert hold == prompt * 2_000 + output * 8_000  # $2 / $8 per 1M tokens


def test_estimate_for_embeddings_has_no_output() -> None:
    body = {"model": "gpt-4o", "input": "x" * 300, "max_tokens": 999}
    hold, prompt = estimated(body, Endpoint.EMBEDDINGS)
    assert hold == prompt * 2_000


def test_estimate_applies_the_group_multiplier() -> None:
    body = {"model": "gpt-4o", "messages": [1], "max_tokens": 10}
    full, _ = estimated(body)
    half, _ = estimated(body, group=VIP)
    assert half == (full + 1) // 2


def test_estimate_covers_the_prompt_generously() -> None:
    # ~1 token per 3 bytes of body: more than a real tokenizer would count for English text.
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "word " * 3000}], "max_tokens": 1}
    _, prompt = estimated(body)
    assert prompt >= 5000


def test_route_picks_from_the_top_tier_and_maps_the_model() -> None:
    c = ctx()
    c.model = "alias"
    c.channels = (
        chan(7, {"alias"}, {"default"}, priority=5, mapping={"alias": "gpt-4o-mini"}),
        chan(8, {"alias"}, {"default"}),
    )
    steps.route(c)
    assert c.channel is not None and c.channel.id == 7
    assert c.upstream_model == "gpt-4o-mini"


def test_route_without_mapping_keeps_the_name() -> None:
    c = ctx()
    c.model = "gpt-4o"
    a, b = chan(1, {"gpt-4o"}, {"default"}), chan(2, {"gpt-4o"}, {"default"})
    c.channels = (a, b)
    seen = Counter()
    state = random.getstate()
    try:
        random.seed(1)
        for _ in range(200):
            steps.route(c)
            assert c.channel is not None
            seen[c.channel.id] += 1
            assert c.upstream_model == "gpt-4o"
    finally:
        random.setstate(state)
    assert set(seen) == {1, 2}
    assert select.pick_channel(()) is None
