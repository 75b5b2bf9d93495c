"""Server-sent events, as bytes: split a byte stream into whole events without re-encoding."""

from __future__ import annotations

DONE_EVENT = b"data: [DONE]\n\n"


class EventSplitter:
    """Feed raw chunks as they arrive; get back every complete event (with its blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk if self._buffer else chunk
        events = []
        start = 0
        crlf_framed = b"\r" in buffer  # almost never: then one search per event is enough
        while True:
            end = buffer.find(b"\n\n", start)
            width = 2
            if crlf_framed:
                crlf = buffer.find(b"\r\n\r\n", start)
                if crlf != -1 and (end == -1 or crlf < end):
                    end, width = crlf, 4
            if end == -1:
                break
            events.append(buffer[start : end + width])
            start = end + width
        self._buffer = buffer[start:]
        return events

    @property
    def remainder(self) -> bytes:
        return self._buffer


def event_data(event: bytes) -> bytes | None:
    """The joined `data:` payload of one event, or None for comments/keep-alives."""
    lines = [line for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    # The SSE rule: drop exactly one space after the colon, if there is one.
    return b"\n".join(line[6:] if line.startswith(b"data: ") else line[5:] for line in lines)
