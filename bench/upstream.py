"""A near-zero-cost OpenAI-compatible upstream for the benchmark.

It answers POST /v1/chat/completions with a canned chat.completion (or, when the request says
"stream": true, a canned SSE stream) over HTTP/1.1 keep-alive. Everything it sends is built once
at start-up, so per request it only splits the request off the buffer and writes one prepared
byte string. Every contestant talks to this same server, so its cost is not theirs.

    python bench/upstream.py --port 0 --port-file /tmp/x.port
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import orjson

CHAT_PATH = b"/v1/chat/completions"
MODEL = "bench-model"
USAGE = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
STREAM_PIECES = ("Hello", " from", " the", " bench", " upstream", ".")
# Requests larger than this are refused rather than buffered: the bench never sends them.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def _chat_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def _chunk(delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def stream_events(include_usage: bool) -> list[bytes]:
    """The SSE events of one streamed answer, each a complete `data: ...\\n\\n` frame."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk({"content": piece}) for piece in STREAM_PIECES]
    chunks.append(_chunk({}, "stop"))
    if include_usage:
        usage_chunk = _chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = USAGE
        chunks.append(usage_chunk)
    events = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks]
    events.append(b"data: [DONE]\n\n")
    return events


def _response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        status,
        content_type,
        len(body),
    )
    return head + body


def _stream_response(events: list[bytes]) -> bytes:
    # Chunked transfer encoding, one HTTP chunk per SSE event, as real upstreams send them.
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    body = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events)
    return head + body + b"0\r\n\r\n"


CHAT_RESPONSE = _response(b"200 OK", b"application/json", _chat_body())
STREAM_RESPONSE = _stream_response(stream_events(include_usage=False))
STREAM_USAGE_RESPONSE = _stream_response(stream_events(include_usage=True))
NOT_FOUND = _response(
    b"404 Not Found",
    b"application/json",
    orjson.dumps({"error": {"message": "bench upstream only serves POST /v1/chat/completions"}}),
)
BAD_REQUEST = _response(b"400 Bad Request", b"application/json", orjson.dumps({"error": {"message": "bad request"}}))


def choose_response(method: bytes, path: bytes, body: bytes) -> bytes:
    if method != b"POST" or path.split(b"?", 1)[0] != CHAT_PATH:
        return NOT_FOUND
    # Cheap pre-check: only requests that mention "stream" pay for a JSON parse.
    if b'"stream"' not in body:
        return CHAT_RESPONSE
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return BAD_REQUEST
    if not isinstance(request, dict) or request.get("stream") is not True:
        return CHAT_RESPONSE
    options = request.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return STREAM_USAGE_RESPONSE
    return STREAM_RESPONSE


class _Incomplete(Exception):
    """The buffer does not yet hold a whole request."""


def _dechunk(data: bytes, start: int) -> tuple[bytes, int]:
    """Decode a chunked request body starting at `start`; return (body, end offset)."""
    parts = []
    pos = start
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            raise _Incomplete
        size = int(data[pos:line_end].split(b";", 1)[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                raise _Incomplete
            return b"".join(parts), trailer_end + 4
        if len(data) < pos + size + 2:
            raise _Incomplete
        parts.append(data[pos : pos + size])
        pos += size + 2


class UpstreamProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and pipelining; just enough parsing for the bench's clients."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        if len(self.buffer) > MAX_REQUEST_BYTES:
            self._finish(BAD_REQUEST, close=True)
            return
        while self.buffer:
            try:
                consumed = self._handle_one(self.buffer)
            except _Incomplete:
                return
            except ValueError:
                self._finish(BAD_REQUEST, close=True)
                return
            self.buffer = self.buffer[consumed:]

    def _handle_one(self, data: bytes) -> int:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            raise _Incomplete
        lines = data[:head_end].split(b"\r\n")
        method, path, _version = lines[0].split(b" ", 2)
        length = 0
        chunked = False
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        body_start = head_end + 4
        if chunked:
            body, end = _dechunk(data, body_start)
        else:
            end = body_start + length
            if len(data) < end:
                raise _Incomplete
            body = data[body_start:end]
        self._finish(choose_response(method, path, body), close=close)
        return end

    def _finish(self, response: bytes, *, close: bool) -> None:
        assert self.transport is not None
        self.transport.write(response)
        if close:
            self.buffer = b""
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def install_fast_loop() -> str:
    """Use uvloop when it is installed, like Tollway does; return the loop's name."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def write_port_file(path: str, port: int) -> None:
    # Write then rename, so a reader never sees a half-written number.
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        handle.write(str(port))
    os.replace(tmp, path)


async def serve(host: str, port: int, port_file: str | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if port_file:
        write_port_file(port_file, bound)
    print(f"bench upstream listening on http://{host}:{bound}", file=sys.stderr, flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    args = parser.parse_args()
    install_fast_loop()
    asyncio.run(serve(args.host, args.port, args.port_file))


if __name__ == "__main__":
    main()
