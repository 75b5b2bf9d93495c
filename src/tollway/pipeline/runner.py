"""The request path, in order: authenticate ▸ resolve model ▸ estimate ▸ reserve ▸ route ▸
call ▸ translate ▸ settle ▸ log. The HTTP layer hands in a context and a way to stream to the
client; everything else about a relay request happens here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import orjson

from tollway.billing.leases import KEY, USER
from tollway.billing.ledger import Ledger
from tollway.billing.prices import cost_nano
from tollway.config import Settings
from tollway.logs.writer import LogWriter
from tollway.pipeline import errors as E
from tollway.pipeline import steps
from tollway.pipeline.context import RequestContext, peek_model
from tollway.pipeline.errors import GatewayError
from tollway.pipeline.upstream import UpstreamClient, UpstreamReply
from tollway.pipeline.upstream_errors import from_upstream_status
from tollway.providers import openai_compat, tokens
from tollway.providers.base import Endpoint
from tollway.providers.openai_stream import StreamFilter, streamed_text
from tollway.snapshot.holder import SnapshotHolder
from tollway.wire.sse import DONE_EVENT
from tollway.wire.usage import ESTIMATED, Usage

log = logging.getLogger("tollway.pipeline")


class ClientGone(Exception):
    """The caller closed the connection while we were streaming to it."""


class ClientStream(Protocol):
    def gone(self) -> bool: ...  # the caller already hung up
    async def start(self) -> None: ...
    async def send(self, data: bytes) -> None: ...  # raises ClientGone
    async def finish(self, data: bytes = b"") -> None: ...  # the last bytes and the end, in one write


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    error: GatewayError | None = None


class Gateway:
    def __init__(
        self,
        settings: Settings,
        snapshots: SnapshotHolder,
        ledger: Ledger,
        writer: LogWriter,
        upstream: UpstreamClient,
    ) -> None:
        self.settings = settings
        self.snapshots = snapshots
        self.ledger = ledger
        self.writer = writer
        self.upstream = upstream

    async def handle(self, ctx: RequestContext, headers: Mapping[str, str], client: ClientStream) -> Reply | None:
        """Returns the whole reply, or None when it was streamed to `client`."""
        try:
            snapshot = self.snapshots.current
            steps.authenticate(ctx, snapshot, headers)
            steps.parse_body(ctx)
            steps.resolve_model(ctx, snapshot)
            steps.estimate(ctx, self.settings.default_max_output_tokens)
            key = ctx.key
            assert key is not None
            ctx.reservation = await self.ledger.reserve(
                user_id=key.user.id,
                key_id=key.id,
                key_limited=key.spend_limit_nano is not None,
                amount=ctx.estimate_nano,
            )
            steps.route(ctx)
            reply = await self.upstream.send(ctx)
            if reply.status >= 400:
                assert ctx.channel is not None
                raise from_upstream_status(reply.status, reply.body, ctx.channel)
            if ctx.stream:
                await self._relay_stream(ctx, reply, client)
                return None
            return await self._finish_whole(ctx, reply, client)
        except GatewayError as err:
            await self._fail(ctx, err)
            return Reply(status=err.status, body=b"", error=err)
        except Exception:
            log.exception("request %s failed unexpectedly", ctx.request_id)
            err = GatewayError(
                E.INTERNAL_ERROR,
                "the gateway hit an internal error; it has been logged — retry, and quote the request id if it persists",
                "网关内部错误，已记录；请重试，如持续出现请提供请求 ID",
            )
            await self._fail(ctx, err)
            return Reply(status=err.status, body=b"", error=err)

    # -- settle and log ---------------------------------------------------------------

    async def _fail(self, ctx: RequestContext, err: GatewayError) -> None:
        """Refund the hold and log why; the log row is journaled before the error goes out."""
        if ctx.reservation is not None:
            self.ledger.refund(ctx.reservation)
        if ctx.model is None and ctx.raw_body:
            ctx.model = peek_model(ctx.raw_body)  # refused before parsing: still log what was asked for
        ctx.status = err.status
        ctx.error = err
        reason = err.extra.get("reason")
        ctx.failure_reason = f"{err.message_en} ({reason})" if reason else err.message_en
        ctx.charged = False
        ctx.charge_reason = "not charged: the request failed before the upstream produced any tokens"
        try:
            await self.writer.submit({"log": ctx.log_row(), "charge": None})
        except Exception:  # the journal itself failed (a full disk): still answer the caller
            log.exception("request %s: its log row could not be journaled", ctx.request_id)

    async def _settle(self, ctx: RequestContext, usage: Usage, why: str) -> None:
        """Charge for `usage` and journal the charge with its log row; returns once it is
        durable, so the caller answers only after that."""
        assert ctx.key is not None and ctx.price is not None and ctx.reservation is not None
        ctx.usage = usage
        ctx.cost_nano = cost_nano(ctx.price, usage, ctx.key.user.group.price_multiplier_ppm)
        reservation = ctx.reservation
        self.ledger.settle(reservation, ctx.cost_nano)
        charge = None
        if ctx.cost_nano > 0:
            ctx.charged = True
            ctx.charge_reason = f"charged for {why}"
            charge = {
                "user_id": ctx.key.user.id,
                "key_id": ctx.key.id,
                "amount_nano": ctx.cost_nano,
                "user_lease_id": reservation.lease_id(USER),
                "key_lease_id": reservation.lease_id(KEY),
            }
        else:
            ctx.charge_reason = f"not charged: the price of `{ctx.model}` is zero ({why})"
        await self.writer.submit(
            {"log": ctx.log_row(), "charge": charge}, on_committed=lambda: self.ledger.committed(reservation.accounts)
        )

    async def _finish_whole(self, ctx: RequestContext, reply: UpstreamReply, client: ClientStream) -> Reply:
        ctx.first_byte_ns = time.perf_counter_ns()
        usage = openai_compat.response_usage(reply.body)
        why = "the usage the upstream reported"
        if usage is None:
            await self._tokenizer_ready(ctx)
            completion = tokens.count_text(openai_compat.response_text(reply.body), ctx.upstream_model or "")
            usage = Usage(self._count_prompt(ctx), completion, 0, ESTIMATED)
            why = "usage Tollway counted (the upstream reported none)"
        if client.gone():
            # The upstream did the work (and bills us), so the charge stands; the log says the
            # answer never reached the caller.
            ctx.status = E.CLIENT_DISCONNECTED.status
            ctx.error = GatewayError(
                E.CLIENT_DISCONNECTED, "the client disconnected before the answer", "客户端在收到响应前断开"
            )
            ctx.failure_reason = ctx.error.message_en
            why += "; the client disconnected before the answer was delivered"
        await self._settle(ctx, usage, why)
        return Reply(status=200, body=reply.body)

    @staticmethod
    async def _tokenizer_ready(ctx: RequestContext) -> None:
        """The first count in a process loads the BPE tables (about a second): off the loop."""
        model = ctx.upstream_model or ctx.model or ""
        if not tokens.is_loaded(model):
            await asyncio.to_thread(tokens.encoding_for, model)

    def _count_prompt(self, ctx: RequestContext) -> int:
        model = ctx.upstream_model or ctx.model or ""
        if ctx.endpoint is Endpoint.CHAT:
            return tokens.count_chat_prompt(ctx.body.get("messages") or [], model, ctx.body.get("tools"))
        if ctx.endpoint is Endpoint.COMPLETIONS:
            return tokens.count_prompt(ctx.body.get("prompt") or "", model)
        return tokens.count_embedding_input(ctx.body.get("input") or "", model)

    async def _estimated_usage(self, ctx: RequestContext, delivered: list[bytes]) -> Usage:
        await self._tokenizer_ready(ctx)
        completion = tokens.count_text(streamed_text(delivered), ctx.upstream_model or "")
        return Usage(self._count_prompt(ctx), completion, 0, ESTIMATED)

    # -- streaming --------------------------------------------------------------------

    async def _relay_stream(self, ctx: RequestContext, reply: UpstreamReply, client: ClientStream) -> None:
        """Each complete upstream event goes to the client as soon as it arrives. Only the
        last read (the one carrying [DONE]) waits until the charge is journaled, and then goes
        out in the same write as the end of the response."""
        assert reply.chunks is not None
        stream = StreamFilter(strip_usage=not ctx.client_wants_usage)
        delivered: list[bytes] = []
        tail = b""
        broken: GatewayError | None = None
        client_gone = False
        try:
            await client.start()
            async for chunk in reply.chunks:
                out = stream.feed(chunk)
                if out:
                    if ctx.first_byte_ns is None:
                        ctx.first_byte_ns = time.perf_counter_ns()
                    delivered.append(out)
                if stream.done:
                    tail = out
                    break
                if out:
                    await client.send(out)
            if stream.done and client.gone():
                # A write into a connection the caller already closed can still "succeed" (the
                # kernel takes it); ask the transport before calling the answer delivered.
                raise ClientGone
            if not stream.done:
                broken = _stream_broken(
                    E.UPSTREAM_STREAM_INTERRUPTED, "the upstream closed the stream early", "上游提前关闭了流"
                )
        except ClientGone:
            client_gone = True
        except TimeoutError:
            broken = _stream_broken(
                E.UPSTREAM_TIMEOUT, "the upstream stopped sending (read timeout)", "上游停止发送数据（读取超时）"
            )
        except aiohttp.ClientError as exc:
            broken = _stream_broken(
                E.UPSTREAM_STREAM_INTERRUPTED,
                f"the upstream stream broke ({type(exc).__name__})",
                f"上游数据流中断（{type(exc).__name__}）",
            )
        finally:
            reply.close(complete=stream.done)

        if client_gone:
            gone = _stream_broken(E.CLIENT_DISCONNECTED, "the client disconnected mid-stream", "客户端在流式传输中断开")
            await self._settle_partial(ctx, stream.usage, delivered, gone)
            return
        if broken is not None:
            await self._settle_partial(ctx, stream.usage, delivered, broken)
            await self._send_stream_error(ctx, client, broken)
            return
        usage = stream.usage
        if usage is not None:
            await self._settle(ctx, usage, "the usage the upstream reported")
        else:
            estimated = await self._estimated_usage(ctx, delivered)
            await self._settle(ctx, estimated, "usage Tollway counted (the upstream reported none)")
        with contextlib.suppress(ClientGone):  # already charged and journaled: the answer was paid for
            await client.finish(tail + DONE_EVENT)

    async def _settle_partial(
        self, ctx: RequestContext, usage: Usage | None, delivered: list[bytes], why: GatewayError
    ) -> None:
        """A stream that ended early: charge what the upstream produced (it bills us for it),
        nothing if it produced nothing, and say so in the log."""
        ctx.status = why.status
        ctx.error = why
        ctx.failure_reason = why.message_en
        if usage is None:
            usage = await self._estimated_usage(ctx, delivered)
        if usage.completion_tokens == 0 and usage.source == ESTIMATED:
            assert ctx.reservation is not None
            self.ledger.refund(ctx.reservation)
            ctx.usage = usage
            ctx.charge_reason = f"not charged: {why.message_en} before any tokens were produced"
            await self.writer.submit({"log": ctx.log_row(), "charge": None})
            return
        await self._settle(
            ctx,
            usage,
            f"{usage.completion_tokens} completion tokens the upstream produced ({usage.source}) "
            f"before {why.message_en}",
        )

    async def _send_stream_error(self, ctx: RequestContext, client: ClientStream, err: GatewayError) -> None:
        """Headers (200) are long gone: the error travels as a last SSE event, in the OpenAI
        error shape, in the caller's language."""
        payload = orjson.dumps(
            {
                "error": {
                    "message": err.message(ctx.accept_language),
                    "type": err.kind.type,
                    "param": None,
                    "code": err.code,
                    "request_id": ctx.request_id,
                }
            }
        )
        with contextlib.suppress(ClientGone):
            await client.finish(b"data: " + payload + b"\n\n")


def _stream_broken(kind: E.ErrorKind, message_en: str, message_zh: str) -> GatewayError:
    return GatewayError(kind, message_en, message_zh)
