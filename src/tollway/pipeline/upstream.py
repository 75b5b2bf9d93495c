"""The only place that performs upstream I/O: one shared, pooled aiohttp client for network
channels, and the in-process demo provider for `demo` channels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from tollway.pipeline import errors as E
from tollway.pipeline.context import RequestContext
from tollway.pipeline.errors import GatewayError
from tollway.providers import demo, openai_compat, tokens
from tollway.providers.base import Endpoint


@dataclass(slots=True)
class UpstreamReply:
    status: int
    body: bytes = b""  # whole body when not streaming (or on an error status)
    chunks: AsyncIterator[bytes] | None = None  # raw bytes as they arrive, when streaming
    _response: aiohttp.ClientResponse | None = field(default=None, repr=False)

    def close(self, *, complete: bool) -> None:
        """A complete stream hands its connection back to the pool for the next request; an
        unfinished one closes it, which is how an upstream learns to stop generating."""
        if self._response is None:
            return
        if complete:
            self._response.release()
        else:
            self._response.close()


def _upstream_unreachable(reason: str) -> GatewayError:
    return GatewayError(
        E.UPSTREAM_ERROR,
        "the upstream provider could not be reached; try again shortly",
        "无法连接上游服务；请稍后重试",
        extra={"reason": reason},
    )


def upstream_timeout() -> GatewayError:
    return GatewayError(
        E.UPSTREAM_TIMEOUT,
        "the upstream provider did not answer in time; try again, or ask for fewer tokens",
        "上游服务响应超时；请重试或减少请求的 token 数",
    )


class UpstreamClient:
    def __init__(self, *, connect_timeout_s: float, read_timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
        self._session: aiohttp.ClientSession | None = None
        # Parsed upstream URLs: a channel has a handful, and parsing one costs more than a lookup.
        self._urls: dict[str, URL] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, ctx: RequestContext) -> UpstreamReply:
        channel = ctx.channel
        assert channel is not None and ctx.upstream_model is not None
        if channel.type == "demo":
            if not tokens.is_loaded(ctx.upstream_model):
                await asyncio.to_thread(tokens.preload)  # once per process, off the event loop
            return _demo_reply(ctx)
        request = openai_compat.build_request(
            ctx.endpoint,
            channel,
            ctx.raw_body,
            ctx.body,
            upstream_model=ctx.upstream_model,
            stream=ctx.stream,
            client_wants_usage=ctx.client_wants_usage,
        )
        assert self._session is not None
        try:
            url = self._urls.get(request.url)
            if url is None:
                url = self._urls[request.url] = URL(request.url)
            response = await self._session.post(url, data=request.body, headers=request.headers)
        except TimeoutError:
            raise upstream_timeout() from None
        except aiohttp.ClientError as exc:
            raise _upstream_unreachable(f"{type(exc).__name__}: {exc}") from None
        if not ctx.stream or response.status >= 400:
            try:
                body = await response.read()
            except TimeoutError:
                response.close()
                raise upstream_timeout() from None
            except aiohttp.ClientError as exc:
                response.close()
                raise GatewayError(
                    E.UPSTREAM_ERROR,
                    "the upstream provider's answer broke off before it was complete; try again",
                    "上游服务的响应在完成前中断；请重试",
                    extra={"reason": f"reading the upstream answer failed: {type(exc).__name__}: {exc}"},
                ) from None
            response.release()
            return UpstreamReply(status=response.status, body=body)
        return UpstreamReply(status=response.status, chunks=response.content.iter_any(), _response=response)


def _demo_reply(ctx: RequestContext) -> UpstreamReply:
    model = ctx.upstream_model or ""
    response_id = "chatcmpl-" + ctx.request_id.removeprefix("req_")
    created = int(time.time())
    try:
        if ctx.endpoint is Endpoint.EMBEDDINGS:
            return UpstreamReply(status=200, body=demo.embeddings(ctx.body, model))
        if ctx.stream:
            maker: Any = demo.chat_completion_events if ctx.endpoint is Endpoint.CHAT else demo.completion_events
            events = maker(ctx.body, model, response_id=response_id, created=created, include_usage=True)
            return UpstreamReply(status=200, chunks=_iterate(events))
        maker = demo.chat_completion if ctx.endpoint is Endpoint.CHAT else demo.completion
        return UpstreamReply(status=200, body=maker(ctx.body, model, response_id=response_id, created=created))
    except demo.DemoInputError as exc:
        raise GatewayError(E.BAD_REQUEST, str(exc), f"请求无效：{exc}") from None


async def _iterate(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
        await asyncio.sleep(0)  # let each chunk reach the client on its own, like a real upstream
