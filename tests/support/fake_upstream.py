"""An OpenAI-compatible upstream on 127.0.0.1 that can misbehave on purpose.

A real aiohttp server on a random free port, in its own thread with its own event loop, so both
synchronous and async tests can point Tollway (or the openai SDK) at it:

    with FakeUpstream() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="upstream-secret")

Endpoints: POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings, GET /v1/models.
Every request must carry `Authorization: Bearer <api_key>`, else 401 with an OpenAI-style error.
Every request (authorized or not) is recorded in `requests`.

Behaviour is chosen per request by the requested model name, so concurrent tests and one channel
serving many models can exercise everything. A name is read as behaviour prefixes followed by any
base name; prefixes combine, e.g. "slow-200-nousage-gpt-4o".

| model name            | behaviour                                                                  |
|-----------------------|----------------------------------------------------------------------------|
| anything else         | answers like OpenAI: text "Hello! This is the fake upstream.", usage      |
| (e.g. "gpt-4o-mini")  | prompt_tokens=10, completion_tokens=5 (streams: usage chunk only when      |
|                       | stream_options.include_usage is true). With `tools` in a chat request:     |
|                       | one call to the first tool, arguments '{"city": "Paris"}', finish_reason   |
|                       | "tool_calls". Embeddings: deterministic unit vectors, 16 dimensions or     |
|                       | `dimensions`; float or base64.                                             |
| echo-…                | the reply text is the last user message's text (completions: the prompt)  |
| slow-<ms>-…           | waits <ms> ms before answering at all (before the status line)            |
| stall-<ms>-…          | streams: sends status and headers at once, then waits <ms> ms before the   |
|                       | first chunk (non-stream: same as slow)                                     |
| fail-<status>-…       | HTTP <status>, body {"error": {"message": "fake upstream failure …         |
|                       | internal.upstream.example …", "type": "server_error", "code": "fake"}}     |
| cut-<n>-…             | streams: role chunk + n content chunks, then the connection is closed      |
|                       | abruptly (no finish chunk, no [DONE]); non-stream: half the body, then     |
|                       | closed, though Content-Length promised all of it                           |
| nousage-…             | never sends usage, neither in a body nor as a stream chunk                |
| bigusage-<n>-…        | reports completion_tokens=n (prompt_tokens=10)                             |
| drip-<ms>-…           | streams 10 content chunks with <ms> ms between them                        |
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import math
import re
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

FAKE_TEXT = "Hello! This is the fake upstream."
PROMPT_TOKENS = 10
COMPLETION_TOKENS = 5
TOOL_ARGUMENTS = '{"city": "Paris"}'
DRIP_CHUNKS = 10
EMBEDDING_DIMENSIONS = 16
LEAK_MARKER = "internal.upstream.example"  # tests assert Tollway never shows this to clients
LISTED_MODELS = ("gpt-4o-mini", "gpt-4o", "fake-model", "text-embedding-3-small")

_NUMBERED = re.compile(r"^(slow|stall|fail|cut|bigusage|drip)-(\d+)(?:-|$)")
_FLAG = re.compile(r"^(nousage|echo)(?:-|$)")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any  # the parsed body, or None when it was absent or not JSON
    time: float  # time.time() when the request arrived


@dataclass(slots=True)
class Behaviour:
    """What a model name asks the fake upstream to do."""

    delay_ms: int = 0
    stall_ms: int = 0
    fail_status: int | None = None
    cut_after: int | None = None
    usage: bool = True
    completion_tokens: int = COMPLETION_TOKENS
    drip_ms: int | None = None
    echo: bool = False

    @classmethod
    def from_model(cls, model: str) -> Behaviour:
        found = cls()
        rest = model
        while True:
            if match := _NUMBERED.match(rest):
                kind, number = match.group(1), int(match.group(2))
                if kind == "slow":
                    found.delay_ms = number
                elif kind == "stall":
                    found.stall_ms = number
                elif kind == "fail":
                    found.fail_status = number
                elif kind == "cut":
                    found.cut_after = number
                elif kind == "bigusage":
                    found.completion_tokens = number
                else:
                    found.drip_ms = number
            elif match := _FLAG.match(rest):
                if match.group(1) == "nousage":
                    found.usage = False
                else:
                    found.echo = True
            else:
                return found
            rest = rest[match.end() :]


class FakeUpstream:
    def __init__(self, *, api_key: str = "upstream-secret") -> None:
        self._api_key = api_key
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._startup_error: BaseException | None = None
        self.port = 0

    def __repr__(self) -> str:  # never show the key
        return f"FakeUpstream(base_url={self.base_url!r})"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy, safe to read while the server keeps recording."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream is already running")
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("FakeUpstream did not start within 10 s")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("FakeUpstream failed to start") from self._startup_error

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        loop.close()
        self._thread = None
        self._loop = None
        self._runner = None

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), which raises it in the caller's thread
            self._startup_error = exc
            ready.set()
            return
        ready.set()
        self._loop.run_forever()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # A short shutdown timeout: stop() must not wait for a "slow-60000" request to finish.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    # ------------------------------------------------------------ request intake

    async def _intake(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """Record the request; return its JSON body, or the error response to send instead."""
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        with self._lock:
            self._requests.append(
                RecordedRequest(request.method, request.path, dict(request.headers), body, time.time())
            )
        if request.headers.get("Authorization") != f"Bearer {self._api_key}":
            return None, _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if request.method == "POST":
            if not isinstance(body, dict):
                return None, _error(400, "The body must be a JSON object.", "invalid_request_error", None)
            if not isinstance(body.get("model"), str) or not body["model"]:
                return None, _error(400, "You must provide a model parameter.", "invalid_request_error", None)
        return body, None

    async def _prelude(self, body: dict) -> tuple[Behaviour, web.Response | None]:
        """Apply the delay and failure a model name asks for."""
        behaviour = Behaviour.from_model(body["model"])
        if behaviour.delay_ms:
            await asyncio.sleep(behaviour.delay_ms / 1000)
        if behaviour.fail_status is not None:
            message = (
                f"fake upstream failure: backend {LEAK_MARKER}:8443 returned {behaviour.fail_status} "
                "(request id req_fake_internal)"
            )
            return behaviour, _error(behaviour.fail_status, message, "server_error", "fake")
        return behaviour, None

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}-fake{next(self._ids)}"

    # ------------------------------------------------------------ chat

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._intake(request)
        if refused is not None:
            return refused
        behaviour, refused = await self._prelude(body)
        if refused is not None:
            return refused
        model = body["model"]
        text = _last_user_text(body.get("messages")) if behaviour.echo else FAKE_TEXT
        tool = _first_tool_name(body.get("tools"))
        head = {
            "id": self._next_id("chatcmpl"),
            "object": "chat.completion.chunk" if body.get("stream") else "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        usage = _usage(behaviour) if behaviour.usage else None

        if not body.get("stream"):
            if tool is not None:
                call = {
                    "id": "call_fake1",
                    "type": "function",
                    "function": {"name": tool, "arguments": TOOL_ARGUMENTS},
                }
                message = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
                finish = "tool_calls"
            else:
                message = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
                finish = "stop"
            payload = {
                **head,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            }
            if usage is not None:
                payload["usage"] = usage
            payload["service_tier"] = "default"
            return await _send_json(request, payload, behaviour)

        include_usage = usage is not None and _wants_usage(body)
        if include_usage:
            head["usage"] = None

        def chunk(delta: dict, finish: str | None = None) -> dict:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**head, "choices": [choice]}

        if tool is not None:
            first = {
                "index": 0,
                "id": "call_fake1",
                "type": "function",
                "function": {"name": tool, "arguments": ""},
            }
            events = [chunk({"role": "assistant", "content": None, "tool_calls": [first]})]
            # Arguments arrive in fragments, as OpenAI sends them.
            half = len(TOOL_ARGUMENTS) // 2
            for fragment in (TOOL_ARGUMENTS[:half], TOOL_ARGUMENTS[half:]):
                events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}))
            finish = "tool_calls"
        else:
            events = [chunk({"role": "assistant", "content": "", "refusal": None})]
            events.extend(chunk({"content": piece}) for piece in _pieces(text, behaviour))
            finish = "stop"
        events.append(chunk({}, finish))
        if include_usage:
            events.append({**head, "choices": [], "usage": usage})
        # cut-<n> counts content chunks; the role chunk comes first.
        keep = None if behaviour.cut_after is None else behaviour.cut_after + 1
        return await _send_stream(request, events, behaviour, keep)

    # ------------------------------------------------------------ completions

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._intake(request)
        if refused is not None:
            return refused
        behaviour, refused = await self._prelude(body)
        if refused is not None:
            return refused
        prompt = body.get("prompt")
        text = (prompt if isinstance(prompt, str) else FAKE_TEXT) if behaviour.echo else FAKE_TEXT
        head = {
            "id": self._next_id("cmpl"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }
        usage = _usage(behaviour) if behaviour.usage else None

        if not body.get("stream"):
            payload = {
                **head,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
            }
            if usage is not None:
                payload["usage"] = usage
            return await _send_json(request, payload, behaviour)

        include_usage = usage is not None and _wants_usage(body)
        if include_usage:
            head["usage"] = None

        def chunk(piece: str, finish: str | None = None) -> dict:
            return {
                **head,
                "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}],
            }

        events = [chunk(piece) for piece in _pieces(text, behaviour)]
        events.append(chunk("", "stop"))
        if include_usage:
            events.append({**head, "choices": [], "usage": usage})
        return await _send_stream(request, events, behaviour, behaviour.cut_after)

    # ------------------------------------------------------------ embeddings and models

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._intake(request)
        if refused is not None:
            return refused
        behaviour, refused = await self._prelude(body)
        if refused is not None:
            return refused
        raw_input = body.get("input")
        inputs = [raw_input] if isinstance(raw_input, str) or _is_id_list(raw_input) else raw_input
        if not isinstance(inputs, list) or not inputs:
            return _error(400, "'input' must be a non-empty string or array.", "invalid_request_error", None)
        dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
        base64_format = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            packed = struct.pack(f"<{dimensions}f", *_unit_vector(repr(item), dimensions))
            vector: Any = (
                base64.b64encode(packed).decode() if base64_format else list(struct.unpack(f"<{dimensions}f", packed))
            )
            data.append({"object": "embedding", "index": index, "embedding": vector})
        payload: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
        if behaviour.usage:
            payload["usage"] = {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS}
        return await _send_json(request, payload, behaviour)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        _, refused = await self._intake(request)
        if refused is not None:
            return refused
        data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"} for m in LISTED_MODELS]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        _, refused = await self._intake(request)
        if refused is not None:
            return refused
        return _error(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error", None)


# ---------------------------------------------------------------- helpers


def _error(status: int, message: str, kind: str, code: str | None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _usage(behaviour: Behaviour) -> dict:
    completion = behaviour.completion_tokens
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _wants_usage(body: dict) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _pieces(text: str, behaviour: Behaviour) -> list[str]:
    """Content deltas: a word each; exactly DRIP_CHUNKS for drip; at least n for cut-<n>."""
    if behaviour.drip_ms is not None:
        bounds = [len(text) * i // DRIP_CHUNKS for i in range(DRIP_CHUNKS + 1)]
        return [text[bounds[i] : bounds[i + 1]] for i in range(DRIP_CHUNKS)]
    words = re.findall(r"\s*\S+\s*", text) or [text]
    if behaviour.cut_after is not None and behaviour.cut_after > len(words):
        return [words[i % len(words)] for i in range(behaviour.cut_after)]
    return words


async def _send_json(request: web.Request, payload: dict, behaviour: Behaviour) -> web.StreamResponse:
    body = orjson.dumps(payload)
    if behaviour.cut_after is None:
        return web.Response(body=body, content_type="application/json")
    # Promise the whole body, deliver half, hang up: a truncated non-stream response.
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    _hang_up(request)
    return response


async def _send_stream(
    request: web.Request, events: list[dict], behaviour: Behaviour, keep: int | None
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    if behaviour.stall_ms:
        await asyncio.sleep(behaviour.stall_ms / 1000)
    for i, event in enumerate(events):
        if keep is not None and i == keep:
            _hang_up(request)
            return response
        if i and behaviour.drip_ms:
            await asyncio.sleep(behaviour.drip_ms / 1000)
        await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _hang_up(request: web.Request) -> None:
    """Close the connection mid-response; what was written is flushed first, nothing follows."""
    if request.transport is not None:
        request.transport.close()


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            return ""
    return ""


def _first_tool_name(tools: Any) -> str | None:
    if not isinstance(tools, list) or not tools:
        return None
    first = tools[0]
    function = first.get("function") if isinstance(first, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def _is_id_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) for v in value)


def _unit_vector(seed: str, dimensions: int) -> list[float]:
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{seed}/{block}".encode()).digest()
        values.extend(v / 2_147_483_648 - 1.0 for v in struct.unpack("<8I", digest))
        block += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
