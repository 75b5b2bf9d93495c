from __future__ import annotations

from typing import Any

import pytest

from tollway.wire.usage import ESTIMATED, NONE, REPORTED, Usage, usage_from_openai


def test_defaults_are_reported_zeroes() -> None:
    assert Usage() == Usage(prompt_tokens=0, completion_tokens=0, cached_tokens=0, source=REPORTED)
    assert len({REPORTED, ESTIMATED, NONE}) == 3


def test_reads_a_chat_usage_object() -> None:
    usage = usage_from_openai({"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150})
    assert usage == Usage(prompt_tokens=120, completion_tokens=30, cached_tokens=0, source=REPORTED)


def test_reads_cached_tokens_from_prompt_details() -> None:
    data = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 64},
    }
    assert usage_from_openai(data) == Usage(2006, 300, 1920)


def test_embedding_usage_has_no_completion_tokens() -> None:
    assert usage_from_openai({"prompt_tokens": 8, "total_tokens": 8}) == Usage(8, 0, 0)


@pytest.mark.parametrize(
    "data",
    [
        {"prompt_tokens": 5, "completion_tokens": None},
        {"prompt_tokens": 5, "prompt_tokens_details": None},
        {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": None}},
        {"prompt_tokens": 5, "prompt_tokens_details": "n/a"},
    ],
)
def test_null_parts_count_as_zero(data: dict[str, Any]) -> None:
    assert usage_from_openai(data) == Usage(5, 0, 0)


def test_cached_tokens_never_exceed_prompt_tokens() -> None:
    usage = usage_from_openai(
        {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 50}}
    )
    assert usage is not None
    assert usage.cached_tokens == 10


@pytest.mark.parametrize(
    "data",
    [
        None,
        "usage",
        [1, 2],
        {},
        {"completion_tokens": 3},
        {"prompt_tokens": "12", "completion_tokens": 3},
        {"prompt_tokens": 1.5, "completion_tokens": 3},
        {"prompt_tokens": 12, "completion_tokens": "3"},
        {"prompt_tokens": 12, "completion_tokens": 3.0},
        {"prompt_tokens": 12, "prompt_tokens_details": {"cached_tokens": "4"}},
    ],
)
def test_absent_or_malformed_usage_is_none(data: Any) -> None:
    assert usage_from_openai(data) is None


@pytest.mark.parametrize(
    "data",
    [
        {"prompt_tokens": -100, "completion_tokens": 0},
        {"prompt_tokens": 10, "completion_tokens": -5},
    ],
)
def test_negative_token_counts_are_malformed(data: dict[str, Any]) -> None:
    assert usage_from_openai(data) is None
