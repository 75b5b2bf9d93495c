from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.support.fake_upstream import (
    COMPLETION_TOKENS,
    FAKE_TEXT,
    LEAK_MARKER,
    PROMPT_TOKENS,
    Behaviour,
    FakeUpstream,
)

KEY = "upstream-secret"
HELLO = [{"role": "user", "content": "Say hi"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=KEY) as server:
        yield server


@pytest.fixture
def client(fake: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=10)


async def post(fake: FakeUpstream, path: str, body: dict, key: str | None = KEY) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.read()


async def stream_events(
    fake: FakeUpstream, path: str, body: dict
) -> tuple[list[tuple[float, bytes]], Exception | None]:
    """The SSE data lines with their arrival times, and the error that ended the stream, if any."""
    events: list[tuple[float, bytes]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + path, json=body, headers={"Authorization": f"Bearer {KEY}"}) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        try:
            async for line in response.content:
                if line.startswith(b"data: "):
                    events.append((time.monotonic(), line.strip()[6:]))
        except aiohttp.ClientPayloadError as exc:
            return events, exc
    return events, None


def payloads(events: list[tuple[float, bytes]]) -> list[dict[str, Any]]:
    return [orjson.loads(data) for _, data in events if data != b"[DONE]"]


# ---------------------------------------------------------------- model-name behaviours


def test_behaviour_prefixes_combine() -> None:
    found = Behaviour.from_model("slow-200-nousage-bigusage-99-echo-gpt-4o")
    assert (found.delay_ms, found.usage, found.completion_tokens, found.echo) == (200, False, 99, True)
    assert Behaviour.from_model("gpt-4o-mini") == Behaviour()
    assert Behaviour.from_model("fail-503") == Behaviour(fail_status=503)
    assert Behaviour.from_model("cut-3-x").cut_after == 3
    assert Behaviour.from_model("drip-50-x").drip_ms == 50
    assert Behaviour.from_model("stall-70-x").stall_ms == 70
    # A prefix needs its number: "slow-model" is an ordinary name.
    assert Behaviour.from_model("slow-model") == Behaviour()


# ---------------------------------------------------------------- normal answers


def test_chat_like_openai_and_recorded(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.reset()
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == FAKE_TEXT
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (10, 5, 15)
    [recorded] = fake.requests
    assert recorded.method == "POST"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["Authorization"] == f"Bearer {KEY}"
    assert recorded.json["messages"] == HELLO
    assert recorded.time == pytest.approx(time.time(), abs=30)
    fake.reset()
    assert fake.requests == []


def test_echo_model_repeats_the_last_user_message(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "first"}, {"role": "user", "content": "repeat me"}]
    reply = client.chat.completions.create(model="echo-fake-model", messages=messages)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "repeat me"


def test_chat_stream_with_and_without_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FAKE_TEXT
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert all(c.usage is None for c in chunks[:-1])

    plain = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))  # type: ignore[arg-type]
    assert all(c.usage is None for c in plain)
    assert plain[-1].choices[0].finish_reason == "stop"


async def test_stream_framing_ends_with_done(fake: FakeUpstream) -> None:
    events, error = await stream_events(fake, "/chat/completions", {"model": "m", "messages": HELLO, "stream": True})
    assert error is None
    assert events[-1][1] == b"[DONE]"
    assert all("usage" not in p for p in payloads(events))


def test_tool_call_non_stream_and_stream(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=HELLO, tools=TOOLS)  # type: ignore[arg-type]
    [call] = reply.choices[0].message.tool_calls or []
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Paris"}')
    assert reply.choices[0].finish_reason == "tool_calls"

    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, tools=TOOLS, stream=True))  # type: ignore[arg-type]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    assert "".join((tc.function.arguments or "") for tc in calls if tc.function) == '{"city": "Paris"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_completions_non_stream_and_stream(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once")
    assert reply.object == "text_completion"
    assert reply.choices[0].text == FAKE_TEXT
    assert reply.usage is not None and reply.usage.total_tokens == 15

    chunks = list(
        client.completions.create(
            model="echo-x", prompt="Once upon", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Once upon"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == COMPLETION_TOKENS


def test_embeddings_float_and_base64_agree(client: openai.OpenAI, fake: FakeUpstream) -> None:
    # The SDK asks for base64 unless told otherwise, and decodes it.
    via_base64 = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=8)
    assert fake.requests[-1].json["encoding_format"] == "base64"
    via_float = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], dimensions=8, encoding_format="float"
    )
    assert [d.embedding for d in via_base64.data] == [d.embedding for d in via_float.data]
    assert len(via_float.data[0].embedding) == 8
    assert via_float.data[0].embedding != via_float.data[1].embedding
    assert via_float.usage.prompt_tokens == PROMPT_TOKENS
    # And on the wire, base64 is little-endian float32, as OpenAI sends it.
    raw = client.embeddings.with_raw_response.create(model="m", input="a", dimensions=8, encoding_format="base64")
    wire = orjson.loads(raw.http_response.content)["data"][0]["embedding"]
    assert list(struct.unpack("<8f", base64.b64decode(wire))) == via_float.data[0].embedding


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids


# ---------------------------------------------------------------- refusals and failures


async def test_wrong_or_missing_key_is_401(fake: FakeUpstream) -> None:
    body = {"model": "m", "messages": HELLO}
    for key in ("wrong-key", None):
        status, raw = await post(fake, "/chat/completions", body, key=key)
        assert status == 401
        error = orjson.loads(raw)["error"]
        assert error["code"] == "invalid_api_key"
        assert "wrong-key" not in error["message"]
    assert KEY not in repr(fake)


async def test_bad_requests(fake: FakeUpstream) -> None:
    status, raw = await post(fake, "/chat/completions", {"messages": HELLO})
    assert status == 400 and "model" in orjson.loads(raw)["error"]["message"]
    status, raw = await post(fake, "/nowhere", {"model": "m"})
    assert status == 404 and orjson.loads(raw)["error"]["type"] == "invalid_request_error"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.base_url + "/chat/completions", data=b"{not json", headers={"Authorization": f"Bearer {KEY}"}
        ) as response,
    ):
        assert response.status == 400


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_fail_model_answers_the_status_with_an_openai_error(fake: FakeUpstream, status: int) -> None:
    for path, body in (
        ("/chat/completions", {"model": f"fail-{status}-gpt", "messages": HELLO, "stream": True}),
        ("/completions", {"model": f"fail-{status}-gpt", "prompt": "x"}),
        ("/embeddings", {"model": f"fail-{status}-emb", "input": "x"}),
    ):
        got, raw = await post(fake, path, body)
        assert got == status
        error = orjson.loads(raw)["error"]
        assert error["type"] == "server_error"
        assert error["code"] == "fake"
        assert error["message"].startswith("fake upstream failure")
        assert LEAK_MARKER in error["message"]


def test_fail_model_through_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="fail-502-x", messages=HELLO)  # type: ignore[arg-type]
    assert raised.value.status_code == 502


async def test_slow_model_delays_the_answer(fake: FakeUpstream) -> None:
    started = time.monotonic()
    status, _ = await post(fake, "/chat/completions", {"model": "slow-300-x", "messages": HELLO})
    assert status == 200
    assert time.monotonic() - started >= 0.3


async def test_stall_model_sends_headers_then_waits(fake: FakeUpstream) -> None:
    body = {"model": "stall-800-x", "messages": HELLO, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as resp,
    ):
        headers_at = time.monotonic()
        first = await resp.content.readline()
        first_at = time.monotonic()
        assert resp.status == 200
        assert first.startswith(b"data: ")
        assert first_at - headers_at >= 0.5  # the wait came after the headers


async def test_cut_model_hangs_up_mid_stream(fake: FakeUpstream) -> None:
    body = {"model": "cut-3-x", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    events, error = await stream_events(fake, "/chat/completions", body)
    assert isinstance(error, aiohttp.ClientPayloadError)
    chunks = payloads(events)
    assert len(events) == len(chunks) == 4  # role chunk + 3 content chunks, no [DONE]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert [bool(c["choices"][0]["delta"].get("content")) for c in chunks] == [False, True, True, True]

    # More chunks than the text has words: still exactly n.
    events, error = await stream_events(fake, "/completions", {"model": "cut-9-x", "prompt": "x", "stream": True})
    assert error is not None and len(events) == 9


async def test_cut_model_truncates_a_non_stream_body(fake: FakeUpstream, client: openai.OpenAI) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(fake, "/chat/completions", {"model": "cut-1-x", "messages": HELLO})
    with pytest.raises(openai.APIConnectionError):
        await asyncio.to_thread(client.chat.completions.create, model="cut-1-x", messages=HELLO)


async def test_nousage_model_never_reports_usage(fake: FakeUpstream) -> None:
    status, raw = await post(fake, "/chat/completions", {"model": "nousage-x", "messages": HELLO})
    assert status == 200 and "usage" not in orjson.loads(raw)
    status, raw = await post(fake, "/embeddings", {"model": "nousage-e", "input": "x"})
    assert status == 200 and "usage" not in orjson.loads(raw)
    body = {"model": "nousage-x", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    events, error = await stream_events(fake, "/chat/completions", body)
    assert error is None and events[-1][1] == b"[DONE]"
    assert all("usage" not in p for p in payloads(events))


def test_bigusage_model_reports_many_completion_tokens(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="bigusage-50000-x", messages=HELLO)  # type: ignore[arg-type]
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (10, 50_000, 50_010)
    chunks = list(
        client.chat.completions.create(
            model="bigusage-7-x",
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


async def test_drip_model_spaces_ten_chunks_apart(fake: FakeUpstream) -> None:
    events, error = await stream_events(
        fake, "/chat/completions", {"model": "drip-100-x", "messages": HELLO, "stream": True}
    )
    assert error is None
    content = [
        (at, p) for (at, _), p in zip(events, payloads(events), strict=False) if p["choices"][0]["delta"].get("content")
    ]
    assert len(content) == 10
    assert "".join(p["choices"][0]["delta"]["content"] for _, p in content) == FAKE_TEXT
    # The first chunk reached us long before the last was produced.
    assert content[-1][0] - content[0][0] >= 0.8


async def test_concurrent_requests_are_all_recorded(fake: FakeUpstream) -> None:
    fake.reset()
    results = await asyncio.gather(
        *(
            post(fake, "/chat/completions", {"model": f"echo-{i}", "messages": [{"role": "user", "content": str(i)}]})
            for i in range(20)
        )
    )
    assert [orjson.loads(raw)["choices"][0]["message"]["content"] for _, raw in results] == [str(i) for i in range(20)]
    assert sorted(r.json["model"] for r in fake.requests) == sorted(f"echo-{i}" for i in range(20))


def test_stop_does_not_wait_for_a_slow_request() -> None:
    server = FakeUpstream()
    server.start()
    client = openai.OpenAI(base_url=server.base_url, api_key="upstream-secret", max_retries=0, timeout=30)

    async def call_then_stop() -> None:
        pending = asyncio.create_task(
            asyncio.to_thread(client.chat.completions.create, model="slow-60000-x", messages=HELLO)
        )
        while not server.requests:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.to_thread(server.stop)
        assert time.monotonic() - started < 5
        with pytest.raises(openai.APIConnectionError):
            await pending

    asyncio.run(call_then_stop())
    server.stop()  # a second stop is harmless
    with pytest.raises(RuntimeError), FakeUpstream() as running:
        running.start()
