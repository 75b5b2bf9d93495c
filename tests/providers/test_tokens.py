from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tollway.providers import tokens
from tollway.providers.tokens import (
    count_chat_prompt,
    count_embedding_input,
    count_prompt,
    count_text,
    encoding_for,
    encoding_name_for,
)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("GPT-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("ft:gpt-4o-mini:acme::abc123", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("claude-3-5-sonnet", "cl100k_base"),
        ("deepseek-chat", "cl100k_base"),
        ("", "cl100k_base"),
    ],
)
def test_encoding_name_by_model_family(model: str, expected: str) -> None:
    assert encoding_name_for(model) == expected


def test_encodings_are_loaded_once_and_shared() -> None:
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(encoding_for, ["gpt-4o", "o3", "gpt-5", "gpt-4o-mini"] * 4))
    assert all(e is found[0] for e in found)
    assert found[0].name == "o200k_base"
    assert encoding_for("gpt-4").name == "cl100k_base"
    assert encoding_for("gpt-4") is not found[0]


@pytest.mark.parametrize(
    ("text", "o200k", "cl100k"),
    [
        ("hello world", 2, 2),
        ("Привет, как дела?", 6, 8),
        ("Tollway는 오픈소스 게이트웨이입니다.", 14, 18),
        ("def f(x):\n    return x ** 2\n", 11, 11),
        ("", 0, 0),
    ],
)
def test_count_text_known_values(text: str, o200k: int, cl100k: int) -> None:
    assert count_text(text, "gpt-4o") == o200k
    assert count_text(text, "gpt-4") == cl100k


def test_special_token_markers_count_as_plain_text() -> None:
    # A client sending "<|endoftext|>" must be counted, not rejected by the tokenizer.
    assert count_text("<|endoftext|>", "gpt-4o") == 7


def test_text_beyond_the_tokenizer_limits_is_still_counted() -> None:
    # bpe_openai alone refuses 1,000,000+ characters; splitting before spaces keeps the count exact.
    assert count_text("word " * 300_000, "gpt-4") == 300_001
    # No whitespace at all: cut hard, still a count (eight x's per cl100k token).
    assert count_text("x" * 1_200_000, "gpt-4") == 150_000


def test_count_text_ignores_non_strings() -> None:
    assert count_text(None, "gpt-4o") == 0  # type: ignore[arg-type]
    assert count_text(123, "gpt-4o") == 0  # type: ignore[arg-type]


def test_chat_prompt_matches_openai_accounting() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello, how are you?"},
    ]
    # 3 per message + role (1) + content (6, 6) for each, + 3 to prime the reply.
    assert count_chat_prompt(messages, "gpt-4o") == 23
    assert count_chat_prompt(messages, "gpt-3.5-turbo") == 23


def test_chat_prompt_counts_names_parts_images_and_tool_calls() -> None:
    model = "gpt-4o"
    base = count_chat_prompt([{"role": "user", "content": "hi"}], model)
    assert base == 3 + 3 + count_text("user", model) + count_text("hi", model)

    named = count_chat_prompt([{"role": "user", "content": "hi", "name": "alice"}], model)
    assert named == base + 1 + count_text("alice", model)

    parts = [
        {"type": "text", "text": "hi"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": " there"},
    ]
    with_image = count_chat_prompt([{"role": "user", "content": parts}], model)
    assert with_image == base + tokens.IMAGE_PART_TOKENS + count_text(" there", model)

    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    assistant = count_chat_prompt([{"role": "assistant", "content": None, "tool_calls": [call]}], model)
    assert assistant == 3 + 3 + count_text("assistant", model) + count_text("get_weather", model) + count_text(
        '{"city":"Paris"}', model
    )


def test_chat_prompt_counts_tools_as_json() -> None:
    messages = [{"role": "user", "content": "weather?"}]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    without = count_chat_prompt(messages, "gpt-4o")
    with_tools = count_chat_prompt(messages, "gpt-4o", tools)
    expected_json = '[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]'
    assert with_tools == without + count_text(expected_json, "gpt-4o")


@pytest.mark.parametrize(
    "messages",
    [
        [None, 5, "text", ["nested"]],
        [{"role": None, "content": None}],
        [{"role": "user", "content": [None, 3, {"type": "input_audio"}, {"type": "text", "text": None}]}],
        [{"role": "user", "content": {"unexpected": "object"}}],
        [{"role": "assistant", "tool_calls": "not-a-list"}],
        [{"role": "assistant", "tool_calls": [None, {"function": None}, {"function": {"name": 5}}]}],
        [{"role": "user", "name": 42, "content": "hi"}],
        [],
        "not a list",
        None,
    ],
)
def test_chat_prompt_never_raises_on_odd_shapes(messages: object) -> None:
    count = count_chat_prompt(messages, "gpt-4o", tools=[{"weird": {1, 2}}])  # type: ignore[arg-type]
    assert isinstance(count, int)
    assert count >= tokens.REPLY_PRIMING_TOKENS


def test_chat_prompt_skips_only_what_it_cannot_read() -> None:
    # Non-dict messages add nothing; each readable dict still costs its 3 + role tokens.
    model = "gpt-4"
    odd = count_chat_prompt([None, {"role": "user", "content": None}, "x"], model)
    assert odd == 3 + 3 + count_text("user", model)


def test_chat_prompt_is_stable() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "one two three"}]}]
    assert len({count_chat_prompt(messages, "gpt-4o") for _ in range(5)}) == 1


@pytest.mark.parametrize("counter", [count_prompt, count_embedding_input])
def test_prompt_and_embedding_input_shapes(counter) -> None:  # type: ignore[no-untyped-def]
    model = "gpt-4"
    assert counter("hello world", model) == 2
    assert counter(["hello world", "hello"], model) == 3
    assert counter([15339, 1917, 0], model) == 3
    assert counter([[15339, 1917], [1], []], model) == 3
    assert counter([], model) == 0
    assert counter("", model) == 0
    # Odd shapes count what they can and never raise.
    assert counter(None, model) == 0
    assert counter(["hello", None, True, {"x": 1}, [1, "a", 2]], model) == 3
