"""The OpenAI-compatible endpoints under /v1: thin handlers that build a RequestContext, run the
pipeline and write what it returns."""

from __future__ import annotations

import contextlib
import time

import orjson
from aiohttp import web

from tollway.http.errors import REQUEST_ID_HEADER, error_body, error_response, new_request_id
from tollway.pipeline import errors as E
from tollway.pipeline import steps
from tollway.pipeline.context import RequestContext
from tollway.pipeline.errors import GatewayError
from tollway.pipeline.runner import ClientGone, Gateway
from tollway.providers.base import Endpoint

GATEWAY_KEY = web.AppKey("gateway", Gateway)
TRUST_FORWARDED_KEY = web.AppKey("trust_forwarded_for", bool)

_JSON = "application/json"
_SUPPORTED = ", ".join(f"POST {e.value}" for e in Endpoint) + ", GET /v1/models, GET /v1/models/{model}"


class _EventStream(web.StreamResponse):
    # aiohttp sends a stream's headers on prepare() by default: one write for them and another
    # for the first event. SSE clients wait for the first event anyway, so send them together
    # (one system call less per stream; measured with bench/run.py). Without this attribute, in
    # another aiohttp version, the headers simply go out early again.
    _send_headers_immediately = False


class AiohttpClientStream:
    """Server-sent events to the caller, flushed event by event."""

    __slots__ = ("_request", "_request_id", "_response")

    def __init__(self, request: web.Request, request_id: str) -> None:
        self._request = request
        self._request_id = request_id
        self._response: web.StreamResponse | None = None

    def gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()

    async def start(self) -> None:
        if self.gone():  # hung up while the upstream was thinking: read nothing more from it
            raise ClientGone
        response = _EventStream(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # stop nginx-style proxies from buffering the stream
                REQUEST_ID_HEADER: self._request_id,
            },
        )
        try:
            await response.prepare(self._request)
        except ConnectionError as exc:
            raise ClientGone from exc
        self._response = response

    async def send(self, data: bytes) -> None:
        assert self._response is not None
        try:
            await self._response.write(data)
        except ConnectionError as exc:
            raise ClientGone from exc

    async def finish(self, data: bytes = b"") -> None:
        assert self._response is not None
        try:
            await self._response.write_eof(data)
        except ConnectionError as exc:
            raise ClientGone from exc

    @property
    def response(self) -> web.StreamResponse | None:
        return self._response


def client_ip(request: web.Request) -> str | None:
    if request.app[TRUST_FORWARDED_KEY]:
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded:
            return forwarded.split(",", 1)[0].strip()
    return request.remote


def _relay_handler(endpoint: Endpoint):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.StreamResponse:
        request_id = new_request_id()
        accept_language = request.headers.get("Accept-Language")
        ctx = RequestContext(
            request_id=request_id, endpoint=endpoint, client_ip=client_ip(request), accept_language=accept_language
        )
        try:
            ctx.raw_body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            ctx.body_too_large = True  # refused by parse_body, after authentication, with a log row
        stream = AiohttpClientStream(request, request_id)
        reply = await request.app[GATEWAY_KEY].handle(ctx, request.headers, stream)
        if stream.response is not None:
            if reply is not None and reply.error is not None:
                # Something unexpected broke a stream already under way: its status line is
                # gone, so the error ends it as a last event.
                event = (
                    b"data: "
                    + orjson.dumps(error_body(reply.error, request_id=request_id, accept_language=accept_language))
                    + b"\n\n"
                )
                with contextlib.suppress(ClientGone):
                    await stream.finish(event)
            return stream.response
        if reply is None:
            return web.Response(status=499)  # the caller left before anything could be sent
        if reply.error is not None:
            return error_response(reply.error, request_id=request_id, accept_language=accept_language)
        return web.Response(
            body=reply.body, status=reply.status, content_type=_JSON, headers={REQUEST_ID_HEADER: request_id}
        )

    return handle


async def list_models(request: web.Request) -> web.Response:
    request_id = new_request_id()
    gateway = request.app[GATEWAY_KEY]
    ctx = RequestContext(
        request_id=request_id,
        endpoint=Endpoint.CHAT,
        client_ip=client_ip(request),
        accept_language=request.headers.get("Accept-Language"),
    )
    snapshot = gateway.snapshots.current
    try:
        steps.authenticate(ctx, snapshot, request.headers)
    except GatewayError as err:
        return error_response(err, request_id=request_id, accept_language=ctx.accept_language)
    assert ctx.key is not None
    models = steps.usable_models(snapshot, ctx.key)
    wanted = request.match_info.get("model")
    created = int(time.time())
    if wanted is not None:
        if wanted not in models:
            err = GatewayError(
                E.MODEL_NOT_FOUND,
                f"model `{wanted}` is not available to this key",
                f"此密钥无法使用模型 `{wanted}`",
                param="model",
            )
            return error_response(err, request_id=request_id, accept_language=ctx.accept_language)
        body = {"id": wanted, "object": "model", "created": created, "owned_by": "tollway"}
    else:
        body = {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": created, "owned_by": "tollway"} for m in models],
        }
    return web.Response(body=orjson.dumps(body), content_type=_JSON, headers={REQUEST_ID_HEADER: request_id})


async def unknown_path(request: web.Request) -> web.Response:
    """Every path nothing else claimed: explain the base URL when `/v1` is missing."""
    path = request.path
    request_id = new_request_id()
    known = {e.value for e in Endpoint} | {"/v1/models"}
    base = f"{request.scheme}://{request.host}/v1"
    if "/v1" + path in known or path.startswith("/models/"):
        err = GatewayError(
            E.UNSUPPORTED_ENDPOINT,
            f"`{path}` is not an endpoint here — the base URL is probably missing `/v1`: "
            f"use `{base}` as the base URL (so this request goes to `/v1{path}`)",
            f"`{path}` 不是有效接口——Base URL 可能缺少 `/v1`：请使用 `{base}`（此请求应发往 `/v1{path}`）",
        )
    elif path.rstrip("/") in {"", "/v1"}:
        err = GatewayError(
            E.UNSUPPORTED_ENDPOINT,
            f"this is a Tollway gateway: use `{base}` as the base URL of an OpenAI SDK; endpoints: {_SUPPORTED}",
            f"这是 Tollway 网关：请将 `{base}` 用作 OpenAI SDK 的 Base URL；支持的接口：{_SUPPORTED}",
        )
    elif path in known:
        err = GatewayError(
            E.METHOD_NOT_ALLOWED,
            f"`{request.method} {path}` is not supported; use {'GET' if path == '/v1/models' else 'POST'}",
            f"`{path}` 不支持 {request.method} 方法",
        )
    else:
        err = GatewayError(
            E.UNSUPPORTED_ENDPOINT,
            f"`{request.method} {path}` is not an endpoint here; supported: {_SUPPORTED}",
            f"`{request.method} {path}` 不是有效接口；支持的接口：{_SUPPORTED}",
        )
    return error_response(err, request_id=request_id, accept_language=request.headers.get("Accept-Language"))


def add_relay_routes(app: web.Application) -> None:
    for endpoint in Endpoint:
        app.router.add_post(endpoint.value, _relay_handler(endpoint))
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", list_models)


def add_fallback_route(app: web.Application) -> None:
    """Register last, after every other route and sub-app."""
    app.router.add_route("*", "/{tail:.*}", unknown_path)
