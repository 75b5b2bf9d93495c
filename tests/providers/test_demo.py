from __future__ import annotations

import base64
import math
import struct
from typing import Any

import orjson
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tollway.providers import demo
from tollway.providers.demo import DEMO_CHAT_MODEL, DEMO_EMBEDDING_MODEL, DemoInputError
from tollway.providers.tokens import count_chat_prompt, count_embedding_input, count_prompt, count_text

USER_TEXT = "What is the capital of France?"
CHAT = {"model": DEMO_CHAT_MODEL, "messages": [{"role": "user", "content": USER_TEXT}]}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "note": {"type": "string"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def chat(body: dict, model: str = DEMO_CHAT_MODEL) -> ChatCompletion:
    return ChatCompletion.model_validate_json(demo.chat_completion(body, model, response_id="chatcmpl-1", created=7))


def chat_stream(body: dict, model: str = DEMO_CHAT_MODEL, *, include_usage: bool) -> list[bytes]:
    return demo.chat_completion_events(body, model, response_id="chatcmpl-1", created=7, include_usage=include_usage)


def parse_events(events: list[bytes]) -> list[dict[str, Any]]:
    """Check the SSE framing and return the JSON payloads (without the final [DONE])."""
    assert events[-1] == b"data: [DONE]\n\n"
    payloads = []
    for event in events[:-1]:
        assert event.startswith(b"data: ")
        assert event.endswith(b"\n\n")
        assert b"\n" not in event[6:-2]
        payloads.append(orjson.loads(event[6:]))
    return payloads


# ---------------------------------------------------------------- chat, non-stream


def test_chat_reply_quotes_the_user_and_names_the_demo() -> None:
    reply = chat(CHAT)
    assert reply.object == "chat.completion"
    assert reply.id == "chatcmpl-1"
    assert reply.created == 7
    assert reply.model == DEMO_CHAT_MODEL
    [choice] = reply.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    text = choice.message.content
    assert text is not None
    assert f'"{USER_TEXT}"' in text
    assert "Tollway's built-in demo model" in text


def test_chat_usage_equals_the_counters() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Describe this"}, {"type": "image_url"}]},
        ]
    }
    for model in (DEMO_CHAT_MODEL, "gpt-4o"):
        reply = chat(body, model)
        usage = reply.usage
        assert usage is not None
        assert usage.prompt_tokens == count_chat_prompt(body["messages"], model)
        assert usage.completion_tokens == count_text(reply.choices[0].message.content or "", model)
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        assert usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == 0


def test_chat_is_deterministic_except_id_and_created() -> None:
    first = demo.chat_completion(CHAT, DEMO_CHAT_MODEL, response_id="a", created=1)
    assert first == demo.chat_completion(CHAT, DEMO_CHAT_MODEL, response_id="a", created=1)
    other = orjson.loads(demo.chat_completion(CHAT, DEMO_CHAT_MODEL, response_id="b", created=2))
    assert {**other, "id": "a", "created": 1} == orjson.loads(first)


def test_chat_quote_is_shortened_and_flattened() -> None:
    long_text = "alpha beta\ngamma " * 40
    text = chat({"messages": [{"role": "user", "content": long_text}]}).choices[0].message.content or ""
    quoted = text.split('"')[1]
    assert quoted.endswith("…")
    assert len(quoted) <= demo.QUOTE_CHARS + 1
    assert "\n" not in text


def test_chat_quotes_the_last_user_message_when_others_follow() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
        ]
    }
    assert '"second question"' in (chat(body).choices[0].message.content or "")


def test_chat_without_user_text_still_answers() -> None:
    text = chat({"messages": [{"role": "system", "content": "x"}]}).choices[0].message.content or ""
    assert text.startswith("Hello!")
    assert "demo model" in text


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_chat_is_cut_at_max_tokens(key: str) -> None:
    full = chat(CHAT).choices[0].message.content or ""
    reply = chat({**CHAT, key: 5})
    [choice] = reply.choices
    assert choice.finish_reason == "length"
    text = choice.message.content or ""
    assert full.startswith(text)
    assert count_text(text, DEMO_CHAT_MODEL) == 5
    assert reply.usage is not None and reply.usage.completion_tokens == 5


def test_chat_cut_never_splits_a_character() -> None:
    body = {"messages": [{"role": "user", "content": "東京の天気はどうですか？🌤️"}]}
    full = chat(body).choices[0].message.content or ""
    for limit in range(1, 25):
        reply = chat({**body, "max_tokens": limit})
        text = reply.choices[0].message.content or ""
        assert "\ufffd" not in text
        assert full.startswith(text)
        assert reply.usage is not None
        assert reply.usage.completion_tokens == count_text(text, DEMO_CHAT_MODEL) <= limit


def test_chat_max_tokens_above_length_is_a_normal_stop() -> None:
    reply = chat({**CHAT, "max_tokens": 10_000})
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == chat(CHAT).choices[0].message.content


def test_chat_n_gives_identical_choices_and_bills_each() -> None:
    single = chat(CHAT)
    reply = chat({**CHAT, "n": 3})
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert {c.message.content for c in reply.choices} == {single.choices[0].message.content}
    assert reply.usage is not None and single.usage is not None
    assert reply.usage.completion_tokens == 3 * single.usage.completion_tokens
    assert reply.usage.prompt_tokens == single.usage.prompt_tokens


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": []},
        {"messages": "hi"},
        {},
        {**CHAT, "n": 0},
        {**CHAT, "n": "2"},
        {**CHAT, "max_tokens": 0},
        {**CHAT, "max_tokens": True},
        {**CHAT, "max_completion_tokens": -3},
    ],
)
def test_chat_rejects_what_it_cannot_answer(bad: dict) -> None:
    with pytest.raises(DemoInputError) as raised:
        demo.chat_completion(bad, DEMO_CHAT_MODEL, response_id="x", created=1)
    assert "`" in str(raised.value)  # the message names the field to fix


# ---------------------------------------------------------------- tools


def test_tool_call_to_the_first_function_with_required_strings_filled() -> None:
    body = {**CHAT, "tools": [WEATHER_TOOL, TIME_TOOL]}
    reply = chat(body, "gpt-4o")
    [choice] = reply.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    # Required strings get "demo" (an enum its first value); other properties are left out.
    assert orjson.loads(call.function.arguments) == {"city": "demo", "unit": "celsius"}
    assert reply.usage is not None
    assert reply.usage.completion_tokens == count_text("get_weather", "gpt-4o") + count_text(
        call.function.arguments, "gpt-4o"
    )
    assert reply.usage.prompt_tokens == count_chat_prompt(body["messages"], "gpt-4o", body["tools"])


def test_tool_choice_names_the_function() -> None:
    body = {
        **CHAT,
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
    }
    [call] = chat(body).choices[0].message.tool_calls or []
    assert call.function.name == "get_time"
    assert call.function.arguments == "{}"


def test_tool_choice_naming_an_unknown_function_is_rejected() -> None:
    body = {**CHAT, "tools": [TIME_TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}}
    with pytest.raises(DemoInputError, match="nope"):
        chat(body)


def test_tool_choice_none_answers_with_text() -> None:
    reply = chat({**CHAT, "tools": [WEATHER_TOOL], "tool_choice": "none"})
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.tool_calls is None
    assert USER_TEXT in (reply.choices[0].message.content or "")


def test_after_a_tool_result_the_demo_answers_with_text_about_it() -> None:
    first = chat({**CHAT, "tools": [WEATHER_TOOL]})
    [call] = first.choices[0].message.tool_calls or []
    body = {
        "tools": [WEATHER_TOOL],
        "messages": [
            *CHAT["messages"],
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 °C"},
        ],
    }
    reply = chat(body)
    assert reply.choices[0].finish_reason == "stop"
    text = reply.choices[0].message.content or ""
    assert "`get_weather`" in text
    assert "Sunny, 24 °C" in text


def test_tool_call_id_is_deterministic() -> None:
    body = {**CHAT, "tools": [WEATHER_TOOL]}
    ids = {
        (ChatCompletion.model_validate_json(demo.chat_completion(body, "m", response_id=r, created=1)))
        .choices[0]
        .message.tool_calls[0]  # type: ignore[index]
        .id
        for r in ("a", "b")
    }
    assert len(ids) == 1


# ---------------------------------------------------------------- chat, streaming


def test_stream_reassembles_to_the_non_stream_reply() -> None:
    events = chat_stream(CHAT, include_usage=False)
    chunks = [ChatCompletionChunk.model_validate_json(e[6:]) for e in events[:-1]]
    parse_events(events)
    assert all(c.object == "chat.completion.chunk" and c.id == "chatcmpl-1" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    content_chunks = chunks[1:-1]
    assert len(content_chunks) >= 5
    assert all(c.choices[0].finish_reason is None for c in content_chunks)
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == chat(CHAT).choices[0].message.content
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.content is None
    assert all(c.usage is None for c in chunks)
    assert all("usage" not in p for p in parse_events(events))


def test_stream_usage_chunk_only_when_asked_and_null_before_it() -> None:
    events = chat_stream({**CHAT, "max_tokens": 7}, include_usage=True)
    payloads = parse_events(events)
    assert all(p["usage"] is None for p in payloads[:-1])
    usage_chunk = ChatCompletionChunk.model_validate_json(events[-2][6:])
    assert usage_chunk.choices == []
    non_stream = chat({**CHAT, "max_tokens": 7})
    assert usage_chunk.usage == non_stream.usage
    assert payloads[-2]["choices"][0]["finish_reason"] == "length"


def test_stream_is_deterministic() -> None:
    assert chat_stream(CHAT, include_usage=True) == chat_stream(CHAT, include_usage=True)


def test_stream_with_n_choices() -> None:
    events = chat_stream({**CHAT, "n": 2}, include_usage=True)
    chunks = [ChatCompletionChunk.model_validate_json(e[6:]) for e in events[:-1]]
    texts = {0: "", 1: ""}
    finishes = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    expected = chat(CHAT).choices[0].message.content
    assert texts == {0: expected, 1: expected}
    assert finishes == {0: "stop", 1: "stop"}
    assert chunks[-1].usage == chat({**CHAT, "n": 2}).usage


def test_stream_tool_call() -> None:
    body = {**CHAT, "tools": [WEATHER_TOOL]}
    events = chat_stream(body, include_usage=True)
    chunks = [ChatCompletionChunk.model_validate_json(e[6:]) for e in events[:-1]]
    [call_chunk, finish_chunk, usage_chunk] = chunks
    delta = call_chunk.choices[0].delta
    assert delta.role == "assistant"
    [call] = delta.tool_calls or []
    expected = chat(body).choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.index == 0
    assert call.id == expected.id
    assert call.type == "function"
    assert call.function is not None
    assert (call.function.name, call.function.arguments) == (expected.function.name, expected.function.arguments)
    assert finish_chunk.choices[0].finish_reason == "tool_calls"
    assert usage_chunk.usage == chat(body).usage


# ---------------------------------------------------------------- completions


def completion(body: dict, model: str = DEMO_CHAT_MODEL) -> Completion:
    return Completion.model_validate_json(demo.completion(body, model, response_id="cmpl-1", created=7))


def completion_chunk(payload: dict) -> Completion:
    """Validate a streamed completion chunk. OpenAI streams `finish_reason: null` until the last
    chunk, which the SDK's stream reader accepts (it does not validate) but `Completion`'s strict
    Literal does not; so everything else is validated strictly and null stays null."""
    patched = [{**c, "finish_reason": c["finish_reason"] or "stop"} for c in payload["choices"]]
    chunk = Completion.model_validate({**payload, "choices": patched})
    for choice, raw in zip(chunk.choices, payload["choices"], strict=True):
        choice.finish_reason = raw["finish_reason"]
    return chunk


def test_completion_parses_and_bills_like_the_counters() -> None:
    body = {"prompt": "Once upon a time"}
    reply = completion(body)
    assert reply.object == "text_completion"
    [choice] = reply.choices
    assert choice.finish_reason == "stop"
    assert "Once upon a time" in choice.text
    assert "demo model" in choice.text
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == count_prompt("Once upon a time", DEMO_CHAT_MODEL)
    assert reply.usage.completion_tokens == count_text(choice.text, DEMO_CHAT_MODEL)


def test_completion_prompt_shapes_and_n() -> None:
    reply = completion({"prompt": ["first", "second"], "n": 2})
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert '"first"' in reply.choices[0].text and '"first"' in reply.choices[1].text
    assert '"second"' in reply.choices[2].text
    ids = completion({"prompt": [1, 2, 3]})
    assert "3 token ids" in ids.choices[0].text
    assert ids.usage is not None and ids.usage.prompt_tokens == 3
    assert len(completion({"prompt": [[1, 2], [3]]}).choices) == 2


def test_completion_echo_and_max_tokens() -> None:
    echoed = completion({"prompt": "Hi there", "echo": True})
    plain = completion({"prompt": "Hi there"})
    assert echoed.choices[0].text == "Hi there" + plain.choices[0].text
    assert echoed.usage == plain.usage
    cut = completion({"prompt": "Hi there", "max_tokens": 3})
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 3


def test_completion_stream_reassembles() -> None:
    body = {"prompt": "Once upon a time"}
    events = demo.completion_events(body, DEMO_CHAT_MODEL, response_id="cmpl-1", created=7, include_usage=True)
    payloads = parse_events(events)
    chunks = [completion_chunk(p) for p in payloads]
    assert len(chunks) >= 5
    text = "".join(c.choices[0].text for c in chunks[:-2])
    assert text == completion(body).choices[0].text
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == completion(body).usage
    assert all(p["usage"] is None for p in payloads[:-1])
    no_usage = demo.completion_events(body, DEMO_CHAT_MODEL, response_id="c", created=7, include_usage=False)
    assert all("usage" not in p for p in parse_events(no_usage))


@pytest.mark.parametrize("prompt", [None, [], [1, "a"], {"x": 1}, [[1], "a"]])
def test_completion_rejects_unreadable_prompts(prompt: object) -> None:
    with pytest.raises(DemoInputError, match="prompt"):
        demo.completion({"prompt": prompt}, DEMO_CHAT_MODEL, response_id="x", created=1)


# ---------------------------------------------------------------- embeddings


def embed(body: dict) -> CreateEmbeddingResponse:
    return CreateEmbeddingResponse.model_validate_json(demo.embeddings(body, DEMO_EMBEDDING_MODEL))


def test_embeddings_are_deterministic_unit_vectors() -> None:
    reply = embed({"input": ["alpha", "beta", "alpha"]})
    assert reply.object == "list"
    assert reply.model == DEMO_EMBEDDING_MODEL
    assert [d.index for d in reply.data] == [0, 1, 2]
    vectors = [d.embedding for d in reply.data]
    assert all(len(v) == demo.DEFAULT_EMBEDDING_DIMENSIONS for v in vectors)
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-5)
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert demo.embeddings({"input": "alpha"}, "m") == demo.embeddings({"input": "alpha"}, "m")
    tokens = count_embedding_input(["alpha", "beta", "alpha"], DEMO_EMBEDDING_MODEL)
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (tokens, tokens)


def test_embeddings_base64_matches_float() -> None:
    floats = embed({"input": "alpha", "dimensions": 64}).data[0].embedding
    raw = orjson.loads(demo.embeddings({"input": "alpha", "dimensions": 64, "encoding_format": "base64"}, "m"))
    encoded = raw["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = list(struct.unpack("<64f", base64.b64decode(encoded)))
    assert decoded == floats


def test_embeddings_dimensions_and_token_inputs() -> None:
    assert len(embed({"input": "x", "dimensions": 3072}).data[0].embedding) == 3072
    assert len(embed({"input": "x", "dimensions": 1}).data[0].embedding) == 1
    single_ids = embed({"input": [1, 2, 3]})
    assert len(single_ids.data) == 1 and single_ids.usage.prompt_tokens == 3
    many_ids = embed({"input": [[1, 2], [3]]})
    assert len(many_ids.data) == 2 and many_ids.usage.prompt_tokens == 3
    assert many_ids.data[0].embedding != many_ids.data[1].embedding


@pytest.mark.parametrize(
    "body",
    [
        {"input": ""},
        {"input": []},
        {"input": ["ok", ""]},
        {"input": [[]]},
        {"input": None},
        {},
        {"input": [1.5]},
        {"input": "x", "dimensions": 0},
        {"input": "x", "dimensions": 3073},
        {"input": "x", "dimensions": "8"},
        {"input": "x", "encoding_format": "int8"},
        {"input": ["x"] * 2049},
    ],
)
def test_embeddings_reject_bad_input(body: dict) -> None:
    with pytest.raises(DemoInputError):
        demo.embeddings(body, DEMO_EMBEDDING_MODEL)
