"""The load generator: drives one target with one scenario and prints the measurements as JSON.

It runs in its own process so its CPU never counts against the target. Two phases:
  latency     N sequential requests on one keep-alive connection (after a warm-up) -> p50/p99
  throughput  a fixed number of requests from C concurrent workers -> requests/s, and the
              target's CPU time (its whole process tree) over exactly that phase -> µs/request
then the target tree's RSS. The Authorization header value, if any, comes from the
BENCH_AUTHORIZATION environment variable so it never shows in a process listing.

    python bench/load.py --url http://127.0.0.1:9000/v1 --scenario chat --pid 1234
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import psutil
from aiohttp import ClientSession, ClientTimeout, TCPConnector

MODEL = "bench-model"
_MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
# max_tokens keeps the gateway's reservation estimate small and identical across runs.
SCENARIOS: dict[str, dict] = {
    "chat": {"model": MODEL, "messages": _MESSAGES, "max_tokens": 16},
    "stream": {
        "model": MODEL,
        "messages": _MESSAGES,
        "max_tokens": 16,
        "stream": True,
        "stream_options": {"include_usage": True},
    },
}
AUTH_ENV = "BENCH_AUTHORIZATION"
DEFERRED_WORK_S = 0.6


class LoadError(Exception):
    """The target did not answer the way the bench expects (wrong status or body)."""


@dataclass(frozen=True)
class Target:
    url: str  # the chat completions URL
    body: bytes
    stream: bool
    headers: dict[str, str]


def make_target(base_url: str, scenario: str, authorization: str | None = None) -> Target:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario `{scenario}`; choose from {', '.join(SCENARIOS)}")
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    payload = SCENARIOS[scenario]
    return Target(
        url=base_url.rstrip("/") + "/chat/completions",
        body=orjson.dumps(payload),
        stream=bool(payload.get("stream")),
        headers=headers,
    )


async def one_request(session: ClientSession, target: Target) -> None:
    """Send one request and read the whole answer; raise LoadError if it is not a good one."""
    async with session.post(target.url, data=target.body, headers=target.headers) as response:
        body = await response.read()
        if response.status != 200:
            raise LoadError(f"HTTP {response.status}: {body[:300]!r}")
    if target.stream:
        if not body.rstrip().endswith(b"data: [DONE]"):
            raise LoadError(f"stream did not end with [DONE]: {body[-300:]!r}")
    elif b'"choices"' not in body:
        raise LoadError(f"answer has no choices: {body[:300]!r}")


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), for 0 <= pct <= 100."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and all its descendants."""
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue  # a child that exited between listing and reading
        total += times.user + times.system
    return total


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants (shared pages count once per process)."""
    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


class ErrorCount:
    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None

    def add(self, exc: BaseException) -> None:
        self.count += 1
        if self.first is None:
            self.first = f"{type(exc).__name__}: {exc}"


async def _guarded(session: ClientSession, target: Target, errors: ErrorCount) -> None:
    try:
        await one_request(session, target)
    except Exception as exc:  # bad answers, aiohttp client errors, timeouts: count, keep going
        errors.add(exc)


async def latency_phase(session: ClientSession, target: Target, requests: int, warmup: int, errors: ErrorCount) -> dict:
    """Sequential requests, one in flight at a time; the time of each includes reading it all."""
    for _ in range(warmup):
        await _guarded(session, target, errors)
    samples_ms: list[float] = []
    for _ in range(requests):
        started = time.perf_counter_ns()
        before = errors.count
        await _guarded(session, target, errors)
        if errors.count == before:
            samples_ms.append((time.perf_counter_ns() - started) / 1e6)
    if not samples_ms:
        raise LoadError(f"no request succeeded in the latency phase; first error: {errors.first}")
    return {
        "requests": requests,
        "warmup": warmup,
        "p50_ms": percentile(samples_ms, 50),
        "p99_ms": percentile(samples_ms, 99),
        "mean_ms": sum(samples_ms) / len(samples_ms),
        "max_ms": max(samples_ms),
    }


async def _run_concurrently(
    session: ClientSession, target: Target, requests: int, concurrency: int, errors: ErrorCount
) -> None:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1  # no await between test and decrement, so no request is sent twice
            await _guarded(session, target, errors)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))


async def throughput_phase(
    session: ClientSession,
    target: Target,
    requests: int,
    concurrency: int,
    pid: int | None,
    errors: ErrorCount,
) -> dict:
    # Warm-up opens every connection of the pool so the timed phase pays no handshakes.
    warmup = min(requests, concurrency * 4)
    await _run_concurrently(session, target, warmup, concurrency, errors)
    errors_before = errors.count
    cpu_before = tree_cpu_seconds(pid) if pid else None
    started = time.perf_counter()
    await _run_concurrently(session, target, requests, concurrency, errors)
    elapsed = time.perf_counter() - started
    if pid:
        # Work a target defers past the answer (batched log and ledger writes) is part of what
        # these requests cost, so read its CPU a moment after the last answer.
        await asyncio.sleep(DEFERRED_WORK_S)
    cpu_after = tree_cpu_seconds(pid) if pid else None
    failed = errors.count - errors_before
    result: dict = {
        "requests": requests,
        "concurrency": concurrency,
        "warmup": warmup,
        "seconds": elapsed,
        "failed": failed,
        "rps": requests / elapsed if elapsed > 0 else 0.0,
        "cpu_seconds": None,
        "cpu_us_per_req": None,
    }
    if cpu_before is not None and cpu_after is not None:
        result["cpu_seconds"] = cpu_after - cpu_before
        # Failed requests still cost CPU; divide by all requests served, as the brief measures.
        result["cpu_us_per_req"] = (cpu_after - cpu_before) / requests * 1e6
    return result


async def measure(
    base_url: str,
    scenario: str,
    *,
    latency_requests: int,
    throughput_requests: int,
    concurrency: int,
    pid: int | None = None,
    authorization: str | None = None,
    request_timeout_s: float = 30.0,
    latency_warmup: int | None = None,
) -> dict:
    """Both phases against one target, plus its RSS afterwards. Raises LoadError if the very
    first request fails, so a misconfigured target is reported instead of measured."""
    target = make_target(base_url, scenario, authorization)
    connector = TCPConnector(limit=max(1, concurrency), force_close=False, keepalive_timeout=60)
    timeout = ClientTimeout(total=request_timeout_s)
    errors = ErrorCount()
    self_cpu_before = _self_cpu_seconds()
    async with ClientSession(connector=connector, timeout=timeout) as session:
        await one_request(session, target)  # probe: fail loudly, not 3000 times
        if latency_warmup is None:
            latency_warmup = min(200, max(10, latency_requests // 5))
        latency = await latency_phase(session, target, latency_requests, latency_warmup, errors)
        throughput = await throughput_phase(session, target, throughput_requests, concurrency, pid, errors)
    return {
        "url": target.url,
        "scenario": scenario,
        "latency": latency,
        "throughput": throughput,
        "rss_bytes": tree_rss_bytes(pid) if pid else None,
        "errors": errors.count,
        "first_error": errors.first,
        "loadgen_cpu_seconds": _self_cpu_seconds() - self_cpu_before,
    }


def _self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _install_fast_loop() -> None:
    # The load generator gets the fastest loop available so it is less likely the bottleneck.
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="OpenAI-style base URL, e.g. http://127.0.0.1:9000/v1")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="chat")
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=3000, help="throughput phase request count")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pid", type=int, help="target's root process, for CPU and RSS")
    parser.add_argument("--timeout", type=float, default=600.0, help="overall limit, seconds")
    args = parser.parse_args(argv)
    if args.latency_requests < 1 or args.requests < 1 or args.concurrency < 1:
        parser.error("request counts and concurrency must be at least 1")
    _install_fast_loop()
    run = measure(
        args.url,
        args.scenario,
        latency_requests=args.latency_requests,
        throughput_requests=args.requests,
        concurrency=args.concurrency,
        pid=args.pid,
        authorization=os.environ.get(AUTH_ENV) or None,
    )
    try:
        result = asyncio.run(asyncio.wait_for(run, args.timeout))
    except Exception as exc:  # a failed probe, a refused connection, the overall timeout
        sys.stdout.buffer.write(orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}) + b"\n")
        return 1
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
