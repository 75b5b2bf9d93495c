"""The official `openai` SDK against a running gateway: answers, streams, tools, images, model
mapping, embeddings, legacy completions, the model list, and what each request is charged."""

from __future__ import annotations

import asyncio
import base64
import struct
import time

import openai
import pytest

from tests.e2e.conftest import (
    CHANNEL,
    EMBEDDING_MODEL,
    NARROW_GROUP,
    NARROW_MODELS,
    UPSTREAM_KEY,
    Stage,
    expected_cost,
    unique,
)
from tests.support.fake_upstream import (
    COMPLETION_TOKENS,
    DRIP_CHUNKS,
    EMBEDDING_DIMENSIONS,
    FAKE_TEXT,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
)
from tollway.admin import keys, users

COST = expected_cost(PROMPT_TOKENS, COMPLETION_TOKENS)  # (10*2e9 + 5*8e9) * 1.5 / 1e6 = 90,000


def test_expected_cost_is_the_brief_formula() -> None:
    assert COST == (10 * 2_000_000_000 + 5 * 8_000_000_000) * 3 // 2 // 1_000_000 == 90_000


def test_chat_answer_usage_request_id_and_exact_charge(stage: Stage) -> None:
    account = stage.account()
    marker = unique("plain")
    raw = stage.client(account.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": marker}]
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == FAKE_TEXT
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    request_id = raw.headers["X-Request-Id"]
    assert request_id.startswith("req_")

    row = stage.log_row(request_id)
    assert row["status_code"] == 200 and row["error_code"] is None
    assert row["requested_model"] == row["upstream_model"] == "gpt-4o-mini"
    assert row["channel_name"] == CHANNEL
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (10, 5, "reported")
    assert row["cost_nano"] == COST and row["charged"] is True
    assert row["user_name"] == account.user and row["key_id"] == account.key_id
    assert stage.balance(account.user) == account.balance_nano - COST
    assert keys.get_key(stage.engine, account.key_id)["spent_nano"] == COST
    charges = [e for e in users.list_ledger(stage.engine, account.user) if e["kind"] == "charge"]
    assert [(e["request_id"], e["amount_nano"]) for e in charges] == [(request_id, -COST)]


def test_balance_after_a_batch_of_requests(stage: Stage) -> None:
    account = stage.account()
    client = stage.client(account.key)
    for _ in range(3):
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": unique("batch")}])
    rows = stage.log_rows_for_key(account.key_id, 3)
    assert [r["cost_nano"] for r in rows] == [COST] * 3
    assert stage.balance(account.user) == account.balance_nano - 3 * COST


async def test_concurrent_requests_are_each_charged_once(stage: Stage) -> None:
    """Twenty requests at once from the async SDK, half of them streams: every one answered,
    logged and charged exactly once, and the balance moves by exactly the sum."""
    account = stage.account()
    client = openai.AsyncOpenAI(base_url=stage.gateway.base_url, api_key=account.key, max_retries=0, timeout=30)

    async def one(i: int) -> str:
        messages = [{"role": "user", "content": unique(f"parallel-{i}")}]
        if i % 2:
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        return completion.choices[0].message.content or ""

    try:
        texts = await asyncio.gather(*(one(i) for i in range(20)))
    finally:
        await client.close()
    assert texts == [FAKE_TEXT] * 20
    rows = await asyncio.to_thread(stage.log_rows_for_key, account.key_id, 20)
    assert len(rows) == 20 and len({r["request_id"] for r in rows}) == 20
    assert all(r["cost_nano"] == COST and r["charged"] for r in rows)
    assert sum(r["is_stream"] for r in rows) == 10
    assert stage.balance(account.user) == account.balance_nano - 20 * COST
    assert keys.get_key(stage.engine, account.key_id)["spent_nano"] == 20 * COST


def test_stream_without_usage_request_hides_the_usage_chunk(stage: Stage) -> None:
    account = stage.account()
    marker = unique("stream")
    raw = stage.client(account.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": marker}], stream=True
    )
    chunks = list(raw.parse())

    assert len(chunks) > 2
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FAKE_TEXT
    assert all(c.usage is None for c in chunks), "the client did not ask for usage"
    # ...but the gateway asked the upstream for it, to bill exactly.
    (upstream,) = stage.upstream_requests_with(marker)
    assert upstream.json["stream"] is True
    assert upstream.json["stream_options"] == {"include_usage": True}

    row = stage.log_row(raw.headers["X-Request-Id"])
    assert row["is_stream"] is True and row["status_code"] == 200
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (10, 5, "reported")
    assert row["cost_nano"] == COST and row["charged"] is True
    assert stage.balance(account.user) == account.balance_nano - COST


def test_stream_with_usage_request_gets_the_usage_chunk(stage: Stage) -> None:
    account = stage.account()
    raw = stage.client(account.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": unique("usage")}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())

    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert usage_chunks[0].choices == []
    assert (usage_chunks[0].usage.prompt_tokens, usage_chunks[0].usage.completion_tokens) == (10, 5)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FAKE_TEXT
    row = stage.log_row(raw.headers["X-Request-Id"])
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (10, 5, "reported")
    assert row["cost_nano"] == COST and row["charged"] is True


def test_stream_is_relayed_as_it_arrives_not_buffered(stage: Stage) -> None:
    """Causality, not a benchmark: the upstream spaces 10 chunks 200 ms apart, so if the gateway
    buffered, every chunk would reach the client at about the same moment."""
    account = stage.account()
    stream = stage.client(account.key).chat.completions.create(
        model="drip-200-gpt", messages=[{"role": "user", "content": unique("drip")}], stream=True
    )
    arrivals = [(time.monotonic(), chunk) for chunk in stream if chunk.choices and chunk.choices[0].delta.content]

    assert len(arrivals) == DRIP_CHUNKS
    first, last = arrivals[0][0], arrivals[-1][0]
    assert last - first > 1.0, f"chunks arrived together ({last - first:.3f} s apart): the stream was buffered"
    assert "".join(c.choices[0].delta.content for _, c in arrivals) == FAKE_TEXT


def test_tool_call_comes_back_with_its_arguments(stage: Stage) -> None:
    account = stage.account()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    completion = stage.client(account.key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": unique("weather")}], tools=tools
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert call.function.arguments == TOOL_ARGUMENTS


def test_streamed_tool_call_reassembles(stage: Stage) -> None:
    account = stage.account()
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    stream = stage.client(account.key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": unique("tool-stream")}], tools=tools, stream=True
    )
    name, arguments = "", ""
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name += call.function.name or ""
            arguments += call.function.arguments or ""
    assert (name, arguments) == ("lookup", TOOL_ARGUMENTS)


def test_image_parts_reach_the_upstream_unchanged(stage: Stage) -> None:
    account = stage.account()
    marker = unique("image")
    content = [
        {"type": "text", "text": f"What is in this picture? {marker}"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://images.example/cat.jpg"}},
    ]
    completion = stage.client(account.key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": content}]
    )
    assert completion.choices[0].message.content == FAKE_TEXT
    (upstream,) = stage.upstream_requests_with(marker)
    assert upstream.json["messages"] == [{"role": "user", "content": content}]


def test_model_mapping_renames_the_model_upstream(stage: Stage) -> None:
    account = stage.account()
    marker = unique("alias")
    raw = stage.client(account.key).chat.completions.with_raw_response.create(
        model="alias-model", messages=[{"role": "user", "content": marker}]
    )
    raw.parse()
    (upstream,) = stage.upstream_requests_with(marker)
    assert upstream.json["model"] == "fake-model"
    row = stage.log_row(raw.headers["X-Request-Id"])
    assert (row["requested_model"], row["upstream_model"]) == ("alias-model", "fake-model")
    assert row["cost_nano"] == COST  # billed at the price of the name the client asked for


def test_embeddings_float_and_sdk_default_base64(stage: Stage) -> None:
    account = stage.account()
    client = stage.client(account.key)
    marker = unique("embed")

    as_floats = client.embeddings.create(model=EMBEDDING_MODEL, input=[marker, "second"], encoding_format="float")
    by_default = client.embeddings.create(model=EMBEDDING_MODEL, input=[marker, "second"])

    assert [len(d.embedding) for d in as_floats.data] == [EMBEDDING_DIMENSIONS] * 2
    formats = [r.json.get("encoding_format") for r in stage.upstream_requests_with(marker)]
    assert formats == ["float", "base64"], "the SDK asks for base64 by default and decodes it itself"
    for floats, decoded in zip(as_floats.data, by_default.data, strict=True):
        assert decoded.embedding == pytest.approx(floats.embedding, abs=1e-6)
    assert as_floats.usage.prompt_tokens == PROMPT_TOKENS

    rows = stage.log_rows_for_key(account.key_id, 2)
    # 10 prompt tokens at 0.02 USD/1M × 1.5 = 300 nano-USD each.
    assert [(r["endpoint"], r["prompt_tokens"], r["cost_nano"]) for r in rows] == [("/v1/embeddings", 10, 300)] * 2
    assert stage.balance(account.user) == account.balance_nano - 600


def test_embeddings_base64_passes_through_byte_for_byte(stage: Stage) -> None:
    """Asked explicitly, base64 reaches the caller as the upstream encoded it."""
    account = stage.account()
    response = stage.client(account.key).embeddings.with_raw_response.create(
        model=EMBEDDING_MODEL, input="one", encoding_format="base64"
    )
    encoded = response.http_response.json()["data"][0]["embedding"]
    values = struct.unpack(f"<{EMBEDDING_DIMENSIONS}f", base64.b64decode(encoded))
    assert sum(v * v for v in values) == pytest.approx(1.0, abs=1e-5)


def test_legacy_completions(stage: Stage) -> None:
    account = stage.account()
    raw = stage.client(account.key).completions.with_raw_response.create(model="gpt-4o-mini", prompt=unique("Say hi"))
    completion = raw.parse()
    assert completion.choices[0].text == FAKE_TEXT
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 5)
    row = stage.log_row(raw.headers["X-Request-Id"])
    assert row["endpoint"] == "/v1/completions" and row["cost_nano"] == COST


def test_legacy_completions_stream(stage: Stage) -> None:
    account = stage.account()
    stream = stage.client(account.key).completions.create(model="gpt-4o-mini", prompt=unique("Say hi"), stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == FAKE_TEXT
    assert all(c.usage is None for c in chunks), "the client did not ask for usage"
    (row,) = stage.log_rows_for_key(account.key_id, 1)
    assert row["usage_source"] == "reported" and row["cost_nano"] == COST


def test_upstream_without_usage_is_charged_for_counted_tokens(stage: Stage) -> None:
    account = stage.account()
    raw = stage.client(account.key).chat.completions.with_raw_response.create(
        model="nousage-gpt", messages=[{"role": "user", "content": unique("count me")}]
    )
    assert raw.parse().usage is None
    row = stage.log_row(raw.headers["X-Request-Id"])
    assert row["usage_source"] == "estimated"
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["charged"] is True and row["cost_nano"] > 0
    assert "counted" in row["charge_reason"]


def test_models_list_shows_what_the_key_may_use(stage: Stage) -> None:
    everything = stage.account()
    listed = sorted(m.id for m in stage.client(everything.key).models.list())
    # Priced and routed: the unpriced channel model and the priced model with no channel are not offered.
    assert "gpt-4o-mini" in listed and "alias-model" in listed and EMBEDDING_MODEL in listed
    assert "unpriced-model" not in listed and "orphan-model" not in listed

    limited_key = stage.account(allowed_models=["fake-model", "gpt-4o-mini"])
    assert sorted(m.id for m in stage.client(limited_key.key).models.list()) == ["fake-model", "gpt-4o-mini"]

    narrow = stage.account(group=NARROW_GROUP)
    assert sorted(m.id for m in stage.client(narrow.key).models.list()) == sorted(NARROW_MODELS)

    assert stage.client(limited_key.key).models.retrieve("fake-model").id == "fake-model"
    with pytest.raises(openai.NotFoundError):
        stage.client(limited_key.key).models.retrieve("alias-model")


def test_upstream_credential_is_sent_as_bearer_and_never_returned(stage: Stage) -> None:
    account = stage.account()
    client = stage.client(account.key)
    marker = unique("secret")
    seen: list[str] = []

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": marker}]
    )
    seen.append(raw.http_response.text + str(raw.headers))
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": marker}], stream=True
    ) as streamed:
        seen.append(streamed.read().decode() + str(streamed.headers))
    for model in ("fail-500-gpt", "unpriced-model"):
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": marker}])
        seen.append(failed.value.response.text + str(failed.value.response.headers))
    seen.append(client.models.with_raw_response.list().http_response.text)

    upstream = stage.upstream_requests_with(marker)
    assert len(upstream) == 3
    assert all(r.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}" for r in upstream)
    # The caller's own gateway key must not travel upstream either.
    assert all(account.key not in str(r.headers) for r in upstream)
    for text in seen:
        assert UPSTREAM_KEY not in text
    assert UPSTREAM_KEY not in stage.server_output()
