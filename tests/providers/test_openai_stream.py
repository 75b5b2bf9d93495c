"""The fast stream filter must behave exactly like inspecting every event, whatever the reads."""

from __future__ import annotations

import random

import orjson
import pytest

from tollway.providers.openai_compat import StreamInspector
from tollway.providers.openai_stream import StreamFilter, streamed_text
from tollway.wire.sse import EventSplitter
from tollway.wire.usage import Usage


def _event(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _chunk(content: str | None = None, *, finish: str | None = None, usage: object = None) -> bytes:
    delta = {} if content is None else {"content": content}
    return _event(
        {
            "object": "chat.completion.chunk",
            "usage": usage,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


USAGE = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
STREAM = (
    _chunk("")
    + _chunk('Tricky: "usage":{ and data: [DONE] inside text\n')
    + b": keep-alive comment\n\n"
    + _chunk(" more")
    + _chunk(finish="stop")
    + _event({"object": "chat.completion.chunk", "choices": [], "usage": USAGE})
    + b"data: [DONE]\n\n"
    + b"data: after-done junk\n\n"
)


def _reference(stream: bytes, strip_usage: bool) -> tuple[bytes, Usage | None, bool]:
    """Event by event, the slow and obvious way."""
    inspector, out = StreamInspector(), []
    for event in EventSplitter().feed(stream):
        usage_only = inspector.inspect(event)
        if inspector.done:
            break
        if not (usage_only and strip_usage):
            out.append(event)
    return b"".join(out), inspector.usage, inspector.done


def _run(stream: bytes, cuts: list[int], strip_usage: bool) -> tuple[bytes, Usage | None, bool, list[bytes]]:
    relay = StreamFilter(strip_usage=strip_usage)
    pieces = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out = relay.feed(stream[start:end])
        if out:
            pieces.append(out)
    return b"".join(pieces), relay.usage, relay.done, pieces


@pytest.mark.parametrize("strip_usage", [True, False])
def test_every_single_cut_gives_the_reference_result(strip_usage: bool) -> None:
    expected = _reference(STREAM, strip_usage)
    for cut in range(len(STREAM) + 1):
        forwarded, usage, done, pieces = _run(STREAM, [cut], strip_usage)
        assert (forwarded, usage, done) == expected, cut
        assert all(piece.endswith(b"\n\n") for piece in pieces)  # only whole events go out


@pytest.mark.parametrize("strip_usage", [True, False])
def test_random_reads_give_the_reference_result(strip_usage: bool) -> None:
    rng = random.Random(7)
    expected = _reference(STREAM, strip_usage)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 12)))
        assert _run(STREAM, cuts, strip_usage)[:3] == expected


def test_crlf_framed_streams_take_the_event_path_and_agree() -> None:
    crlf = STREAM.replace(b"\n\n", b"\r\n\r\n")
    forwarded, usage, done, _ = _run(crlf, [40, 200], strip_usage=True)
    assert usage == Usage(12, 8, 0) and done
    assert b'"usage":{"prompt_tokens"' not in forwarded and forwarded.endswith(b"\r\n\r\n")


def test_the_usage_chunk_is_stripped_only_when_asked() -> None:
    kept, usage, _, _ = _run(STREAM, [], strip_usage=False)
    stripped, _, _, _ = _run(STREAM, [], strip_usage=True)
    assert usage == Usage(12, 8, 0)
    assert b'"choices":[],"usage":{' in kept and b'"choices":[],"usage":{' not in stripped


def test_usage_inside_a_content_chunk_is_read_but_never_stripped() -> None:
    stream = _chunk("hi", finish="stop", usage=USAGE) + b"data: [DONE]\n\n"
    forwarded, usage, done, _ = _run(stream, [], strip_usage=True)
    assert usage == Usage(12, 8, 0) and done and forwarded == stream[: -len(b"data: [DONE]\n\n")]


def test_without_done_the_stream_is_not_finished() -> None:
    forwarded, _, done, _ = _run(_chunk("a") + _chunk("b"), [5], strip_usage=True)
    assert not done and forwarded == _chunk("a") + _chunk("b")


def test_streamed_text_reads_runs_of_events() -> None:
    _, _, _, pieces = _run(STREAM, [100], strip_usage=True)
    assert streamed_text(pieces) == 'Tricky: "usage":{ and data: [DONE] inside text\n more'
