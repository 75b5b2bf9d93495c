from __future__ import annotations

import pytest

from tollway.wire.sse import DONE_EVENT, EventSplitter, event_data

# A realistic upstream stream: a keep-alive comment, content chunks, a usage-only chunk, [DONE].
STREAM = (
    b": keep-alive\n\n"
    b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"lo\\n"}}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)
STREAM_EVENTS = [
    b": keep-alive\n\n",
    b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"lo\\n"}}]}\n\n',
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
]
CRLF_STREAM = b'data: {"a":1}\r\n\r\n: ping\r\n\r\nevent: message\r\ndata: {"b":2}\r\n\r\ndata: [DONE]\r\n\r\n'
CRLF_EVENTS = [
    b'data: {"a":1}\r\n\r\n',
    b": ping\r\n\r\n",
    b'event: message\r\ndata: {"b":2}\r\n\r\n',
    b"data: [DONE]\r\n\r\n",
]


def split_all(stream: bytes, cuts: list[int]) -> tuple[list[bytes], bytes]:
    splitter = EventSplitter()
    events: list[bytes] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        events.extend(splitter.feed(stream[previous:cut]))
        previous = cut
    return events, splitter.remainder


def test_whole_stream_in_one_chunk() -> None:
    events, rest = split_all(STREAM, [])
    assert events == STREAM_EVENTS
    assert rest == b""


@pytest.mark.parametrize(("stream", "expected"), [(STREAM, STREAM_EVENTS), (CRLF_STREAM, CRLF_EVENTS)])
def test_one_cut_at_every_byte_boundary_gives_the_same_events(stream: bytes, expected: list[bytes]) -> None:
    for cut in range(len(stream) + 1):
        events, rest = split_all(stream, [cut])
        assert events == expected, f"cut at byte {cut}"
        assert rest == b""


@pytest.mark.parametrize(("stream", "expected"), [(STREAM, STREAM_EVENTS), (CRLF_STREAM, CRLF_EVENTS)])
def test_one_byte_at_a_time_gives_the_same_events(stream: bytes, expected: list[bytes]) -> None:
    events, rest = split_all(stream, list(range(1, len(stream))))
    assert events == expected
    assert rest == b""


def test_every_pair_of_cuts_gives_the_same_events() -> None:
    stream = CRLF_STREAM[:40] + STREAM[:60]  # ends mid-event on purpose
    reference, reference_rest = split_all(stream, [])
    assert reference_rest != b""
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1, 3):
            assert split_all(stream, [first, second]) == (reference, reference_rest), (first, second)


def test_events_are_the_exact_input_bytes() -> None:
    events, rest = split_all(STREAM + CRLF_STREAM, [17, 90])
    assert b"".join(events) + rest == STREAM + CRLF_STREAM


def test_incomplete_event_waits_in_the_remainder() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b'data: {"a":') == []
    assert splitter.remainder == b'data: {"a":'
    assert splitter.feed(b"1}\n") == []
    assert splitter.feed(b"\ndata: x") == [b'data: {"a":1}\n\n']
    assert splitter.remainder == b"data: x"


def test_empty_chunks_change_nothing() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"") == []
    assert splitter.feed(b"data: 1\n") == []
    assert splitter.feed(b"") == []
    assert splitter.feed(b"\n") == [b"data: 1\n\n"]
    assert splitter.feed(b"") == []
    assert splitter.remainder == b""


def test_mixed_lf_and_crlf_events_in_one_chunk_keep_their_order() -> None:
    chunk = b"data: 1\r\n\r\ndata: 2\n\ndata: 3\r\n\r\n"
    assert EventSplitter().feed(chunk) == [b"data: 1\r\n\r\n", b"data: 2\n\n", b"data: 3\r\n\r\n"]


def test_event_data_of_a_single_line() -> None:
    assert event_data(b'data: {"a":1}\n\n') == b'{"a":1}'
    assert event_data(b'data:{"a":1}\n\n') == b'{"a":1}'
    assert event_data(b"data: [DONE]\r\n\r\n") == b"[DONE]"


def test_event_data_joins_multi_line_data_with_newlines() -> None:
    event = b'event: message\ndata: {"a":\ndata: 1}\nid: 7\n\n'
    assert event_data(event) == b'{"a":\n1}'
    assert event_data(event.replace(b"\n", b"\r\n")) == b'{"a":\n1}'


def test_event_data_keeps_an_empty_data_line() -> None:
    assert event_data(b"data: a\ndata:\ndata: b\n\n") == b"a\n\nb"


@pytest.mark.parametrize(
    "event",
    [b": keep-alive\n\n", b":\n\n", b"event: ping\n\n", b"id: 3\nretry: 1000\n\n", b": data: not data\n\n", b"\n\n"],
)
def test_event_data_is_none_for_comments_and_events_without_data(event: bytes) -> None:
    assert event_data(event) is None


def test_event_data_removes_only_one_leading_space() -> None:
    assert event_data(b"data:   indented\n\n") == b"  indented"


def test_an_event_and_done_round_trip_through_the_splitter() -> None:
    payload = b'{"choices":[{"delta":{"content":"hi"}}]}'
    events = EventSplitter().feed(b"data: " + payload + b"\n\n" + DONE_EVENT)
    assert [event_data(e) for e in events] == [payload, b"[DONE]"]
