"""Relaying an OpenAI-format SSE stream without re-encoding it.

The filter cuts the byte stream at event boundaries (so the client only ever gets whole
events) and passes the bytes on unchanged, with two exceptions: it stops at `data: [DONE]`
(held back by the caller until the charge is journaled), and it can drop the usage-only chunk
that Tollway asked for on the client's behalf. It reads the usage for billing on the way.

Both are found with a few byte searches per upstream read, not a parse per event: a raw
`"usage":{` can only be JSON structure (inside a JSON string its quotes would be escaped), and
`[DONE]` only counts at the start of an event (a JSON string cannot hold a raw newline). Streams
framed with CRLF take the slower event-by-event path.
"""

from __future__ import annotations

import re

import orjson

from tollway.providers.openai_compat import StreamInspector, choice_texts
from tollway.wire.sse import EventSplitter, event_data
from tollway.wire.usage import Usage, usage_from_openai

_USAGE_MARKERS = (b'"usage":{', b'"usage": {')
_DONE_EVENTS = (b"data: [DONE]", b"data:[DONE]")
_EVENT_GAP = re.compile(rb"\r?\n\r?\n")


class StreamFilter:
    __slots__ = ("_carry", "_events", "_inspector", "_strip_usage", "done", "usage")

    def __init__(self, *, strip_usage: bool) -> None:
        self._strip_usage = strip_usage
        self._carry = b""
        self._events: EventSplitter | None = None  # set once the stream shows CRLF framing
        self._inspector = StreamInspector()
        self.done = False
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to pass on now: whole events only, possibly empty."""
        if self.done:
            return b""  # nothing after [DONE] belongs to the answer
        if self._events is None and b"\r" in chunk:
            self._events = EventSplitter()
            chunk, self._carry = self._carry + chunk, b""
        if self._events is not None:
            return self._feed_events(chunk)
        data = self._carry + chunk if self._carry else chunk
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self._carry = data
            return b""
        complete, self._carry = data[: cut + 2], data[cut + 2 :]
        done_at = _done_at(complete)
        if done_at >= 0:
            self.done = True
            complete = complete[:done_at]
        return self._take_usage(complete)

    def _take_usage(self, complete: bytes) -> bytes:
        at = max(complete.rfind(marker) for marker in _USAGE_MARKERS)
        if at < 0:
            return complete
        start = complete.rfind(b"\n\n", 0, at)
        start = 0 if start < 0 else start + 2
        end = complete.find(b"\n\n", at) + 2
        payload = event_data(complete[start:end])
        try:
            data = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            return complete
        if not isinstance(data, dict):
            return complete
        usage = usage_from_openai(data.get("usage"))
        if usage is None:
            return complete
        self.usage = usage
        if self._strip_usage and not data.get("choices"):
            return complete[:start] + complete[end:]
        return complete

    def _feed_events(self, chunk: bytes) -> bytes:
        assert self._events is not None
        out = []
        for event in self._events.feed(chunk):
            usage_only = self._inspector.inspect(event)
            if self._inspector.done:
                self.done = True
                break
            if usage_only and self._strip_usage:
                continue
            out.append(event)
        if self._inspector.usage is not None:
            self.usage = self._inspector.usage
        return b"".join(out)


def _done_at(complete: bytes) -> int:
    """Where the [DONE] event starts in a run of whole events, or -1."""
    for marker in _DONE_EVENTS:
        if complete.startswith(marker):
            return 0
        found = complete.find(b"\n\n" + marker)
        if found >= 0:
            return found + 2
    return -1


def streamed_text(blobs: list[bytes]) -> str:
    """The text a stream delivered (content, tool-call names and arguments), for counting
    completion tokens when the upstream reported none. `blobs` are runs of whole events."""
    parts: list[str] = []
    for blob in blobs:
        for event in _EVENT_GAP.split(blob):
            payload = event_data(event)
            if payload and payload != b"[DONE]":
                choice_texts(payload, "delta", parts)
    return "".join(parts)
