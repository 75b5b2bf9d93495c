"""The floor: the least a Python pass-through gateway can do, for Tollway to be measured against.

aiohttp web server plus ONE pooled aiohttp.ClientSession. Per request it reads the body, parses
it with orjson (any real gateway must look at the request), forwards the same bytes to the
upstream's same path, and returns the upstream's status, content type and bytes; streams are
relayed chunk by chunk as they arrive. No auth, pricing, logging or translation, so whatever
Tollway spends beyond this is the price of its features.

    python bench/floor_proxy.py --upstream http://127.0.0.1:9000 --port 0 --port-file /tmp/x.port
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

# Run as a script, this file's directory is on sys.path, so the sibling module imports directly.
from upstream import install_fast_loop, write_port_file

SESSION = web.AppKey("session", ClientSession)
UPSTREAM = web.AppKey("upstream", str)
# Sent upstream like a gateway would send its channel credential; the bench upstream ignores it.
UPSTREAM_AUTH = "Bearer bench-upstream-key"


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps({"error": {"message": message}}), content_type="application/json"
    )


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    wants_stream = isinstance(payload, dict) and payload.get("stream") is True
    session = request.app[SESSION]
    headers = {"Content-Type": "application/json", "Authorization": UPSTREAM_AUTH}
    try:
        async with session.request(
            request.method, request.app[UPSTREAM] + request.path_qs, data=body, headers=headers
        ) as upstream:
            content_type = upstream.headers.get("Content-Type", "application/json")
            if not wants_stream:
                data = await upstream.read()
                return web.Response(status=upstream.status, body=data, headers={"Content-Type": content_type})
            reply = web.StreamResponse(status=upstream.status, headers={"Content-Type": content_type})
            await reply.prepare(request)
            async for chunk in upstream.content.iter_any():
                await reply.write(chunk)
            await reply.write_eof()
            return reply
    except (TimeoutError, ClientError) as exc:
        return _error(502, f"upstream failed: {type(exc).__name__}")


async def _open_session(app: web.Application) -> None:
    connector = TCPConnector(limit=0, keepalive_timeout=60)
    app[SESSION] = ClientSession(connector=connector, timeout=ClientTimeout(sock_connect=10, sock_read=60))


async def _close_session(app: web.Application) -> None:
    await app[SESSION].close()


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.on_startup.append(_open_session)
    app.on_cleanup.append(_close_session)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


async def serve(upstream: str, host: str, port: int, port_file: str | None) -> None:
    runner = web.AppRunner(build_app(upstream), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if port_file:
        write_port_file(port_file, bound)
    print(f"floor proxy on http://{host}:{bound} -> {upstream}", file=sys.stderr, flush=True)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="upstream origin, e.g. http://127.0.0.1:9000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    args = parser.parse_args()
    install_fast_loop()
    asyncio.run(serve(args.upstream, args.host, args.port, args.port_file))


if __name__ == "__main__":
    main()
