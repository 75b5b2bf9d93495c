"""The benchmark's own parts, on loopback: the canned upstream, the floor proxy, the measurement
code and the orchestrator. No Tollway here, and no timing assertions: only that the numbers are
present and sane and that every process started is stopped."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import orjson
import psutil
import pytest
from aiohttp import ClientSession

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def _load_module(name: str) -> ModuleType:
    # bench/ holds scripts, not a package: load them by path under names that cannot clash.
    spec = importlib.util.spec_from_file_location(f"tollway_bench_{name}", BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = _load_module("run")
load = _load_module("load")


class Servers:
    def __init__(self, upstream_pid: int, upstream_port: int, floor_pid: int, floor_port: int) -> None:
        self.upstream_pid = upstream_pid
        self.upstream = f"http://127.0.0.1:{upstream_port}"
        self.upstream_port = upstream_port
        self.floor_pid = floor_pid
        self.floor = f"http://127.0.0.1:{floor_port}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    workdir = tmp_path_factory.mktemp("bench")
    children = run.Children()
    try:
        upstream, up_port = run.start_script_server(children, "upstream", "upstream.py", workdir)
        floor, floor_port = run.start_script_server(
            children, "floor", "floor_proxy.py", workdir, "--upstream", f"http://127.0.0.1:{up_port}"
        )
        yield Servers(upstream.proc.pid, up_port, floor.proc.pid, floor_port)
    finally:
        children.stop_all()


def _payload(scenario: str, **extra: object) -> bytes:
    return orjson.dumps({**load.SCENARIOS[scenario], **extra})


async def _post(url: str, body: bytes) -> tuple[int, str, bytes]:
    async with (
        ClientSession() as session,
        session.post(url, data=body, headers={"Content-Type": "application/json"}) as response,
    ):
        return response.status, response.headers.get("Content-Type", ""), await response.read()


def _sse_data(body: bytes) -> list[bytes]:
    return [frame.removeprefix(b"data: ") for frame in body.split(b"\n\n") if frame]


async def test_upstream_answers_chat_with_fixed_usage(servers: Servers) -> None:
    status, content_type, body = await _post(f"{servers.upstream}/v1/chat/completions", _payload("chat"))
    assert status == 200
    assert content_type == "application/json"
    answer = orjson.loads(body)
    assert answer["object"] == "chat.completion"
    assert answer["usage"] == {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
    assert answer["choices"][0]["message"]["role"] == "assistant"


async def test_upstream_streams_usage_only_when_asked(servers: Servers) -> None:
    url = f"{servers.upstream}/v1/chat/completions"
    _, content_type, with_usage = await _post(url, _payload("stream"))
    _, _, without_usage = await _post(url, _payload("chat", stream=True))
    assert content_type == "text/event-stream"
    for body in (with_usage, without_usage):
        frames = _sse_data(body)
        assert frames[-1] == b"[DONE]"
        chunks = [orjson.loads(frame) for frame in frames[:-1]]
        assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    usage_chunks = [orjson.loads(f) for f in _sse_data(with_usage)[:-1] if b'"usage"' in f]
    assert [c["usage"]["total_tokens"] for c in usage_chunks] == [20]
    assert b'"usage"' not in without_usage


async def test_upstream_refuses_other_paths(servers: Servers) -> None:
    status, _, _ = await _post(f"{servers.upstream}/v1/embeddings", _payload("chat"))
    assert status == 404


def test_upstream_keeps_alive_and_answers_pipelined_requests(servers: Servers) -> None:
    body = _payload("chat")
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", servers.upstream_port), timeout=5) as sock:
        sock.sendall(request * 2)  # two requests in one write, on one connection
        received = b""
        while received.count(b'"total_tokens":20') < 2:
            chunk = sock.recv(65536)
            assert chunk, "upstream closed a keep-alive connection"
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 2


async def test_floor_relays_the_upstream_bytes(servers: Servers) -> None:
    for scenario in ("chat", "stream"):
        body = _payload(scenario)
        direct = await _post(f"{servers.upstream}/v1/chat/completions", body)
        proxied = await _post(f"{servers.floor}/v1/chat/completions", body)
        assert proxied == direct


async def test_floor_rejects_invalid_json(servers: Servers) -> None:
    status, _, body = await _post(f"{servers.floor}/v1/chat/completions", b"{not json")
    assert status == 400
    assert b"not valid JSON" in body


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0, 5.0]
    assert load.percentile(values, 50) == 3.0
    assert load.percentile(values, 0) == 1.0
    assert load.percentile(values, 100) == 5.0
    assert load.percentile(values, 75) == 4.0
    assert load.percentile(values, 90) == pytest.approx(4.6)
    with pytest.raises(ValueError):
        load.percentile([], 50)


@pytest.mark.parametrize("scenario", ["chat", "stream"])
async def test_measure_returns_sane_numbers(servers: Servers, scenario: str) -> None:
    result = await load.measure(
        f"{servers.floor}/v1",
        scenario,
        latency_requests=40,
        throughput_requests=300,
        concurrency=8,
        pid=servers.floor_pid,
    )
    assert result["errors"] == 0 and result["first_error"] is None
    latency, throughput = result["latency"], result["throughput"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert throughput["requests"] == 300 and throughput["failed"] == 0
    assert throughput["seconds"] > 0
    assert throughput["rps"] == pytest.approx(300 / throughput["seconds"])
    # 300 proxied requests cost the floor at least a few clock ticks of CPU.
    assert throughput["cpu_seconds"] > 0
    assert throughput["cpu_us_per_req"] == pytest.approx(throughput["cpu_seconds"] / 300 * 1e6)
    assert result["rss_bytes"] > 10 * 1024 * 1024  # a Python process with aiohttp loaded


async def test_measure_fails_loudly_on_a_wrong_target(servers: Servers) -> None:
    with pytest.raises(load.LoadError, match="HTTP 404"):
        await load.measure(f"{servers.upstream}/v2", "chat", latency_requests=5, throughput_requests=5, concurrency=1)


def test_tree_cpu_and_rss_include_children() -> None:
    # A sleeping parent whose child burns CPU: the tree must count the child's CPU and memory.
    burn = "sum(range(3 * 10**7)); import time; time.sleep(30)"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {burn!r}]); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    parent = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kids = parent.children()
            if kids and sum(kids[0].cpu_times()[:2]) >= 0.05:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the CPU-burning child never showed up")
        own_cpu = sum(parent.cpu_times()[:2])
        assert load.tree_cpu_seconds(proc.pid) >= own_cpu + 0.05
        assert load.tree_rss_bytes(proc.pid) > parent.memory_info().rss
    finally:
        for kid in parent.children(recursive=True):
            kid.kill()
        proc.kill()
        proc.wait()


def _row(target: str, cpu: float, added_p50: float | None, errors: int = 0) -> dict:
    return {
        "target": target,
        "scenario": "chat",
        "cpu_us_per_req": cpu,
        "added_p50_ms": added_p50,
        "errors": errors,
    }


def test_checks_judge_tollway_against_the_floor() -> None:
    met = run.checks_for([_row("direct", 10, None), _row("floor", 200, 0.5), _row("tollway", 300, 1.5)])
    assert [(c["name"], c["met"]) for c in met] == [("cpu_ratio", True), ("added_p50_over_floor", True)]
    assert met[0]["value"] == pytest.approx(1.5)
    assert met[1]["value"] == pytest.approx(1.0)
    missed = run.checks_for([_row("floor", 200, 0.5), _row("tollway", 301, 1.6)])
    assert [c["met"] for c in missed] == [False, False]
    with_errors = run.checks_for([_row("floor", 200, 0.5), _row("tollway", 100, 0.5, errors=3)])
    assert [c["met"] for c in with_errors] == [False, False]
    assert run.checks_for([_row("direct", 10, None), _row("floor", 200, 0.5)]) == []


def test_run_measures_direct_and_floor_then_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "results"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
    env["TMPDIR"] = str(scratch)  # run.py's temp dir, so its children are findable below
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "run.py"),
            "--targets",
            "direct,floor",
            "--requests",
            "200",
            "--latency-requests",
            "30",
            "--concurrency",
            "8",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    files = list(out.glob("*.json"))
    assert len(files) == 1
    report = orjson.loads(files[0].read_bytes())
    assert [(r["target"], r["scenario"]) for r in report["rows"]] == [
        ("direct", "chat"),
        ("floor", "chat"),
        ("direct", "stream"),
        ("floor", "stream"),
    ]
    for row in report["rows"]:
        assert row["errors"] == 0
        assert row["rps"] > 0 and row["cpu_us_per_req"] is not None and row["rss_mib"] > 0
        if row["target"] == "direct":  # the baseline adds nothing to itself
            assert row["added_p50_ms"] == 0 and row["added_p99_ms"] == 0
        else:
            assert row["added_p50_ms"] is not None and row["added_p99_ms"] is not None
    assert report["checks"] == []  # no Tollway, nothing to judge
    table = completed.stdout.decode()
    assert "floor" in table and "added p50 ms" in table
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if any(str(scratch) in part for part in (p.info["cmdline"] or []))
    ]
    for leftover in leftovers:  # never leak them, even when this test fails
        leftover.kill()
    assert [p.pid for p in leftovers] == []
    assert list(scratch.iterdir()) == []  # the temp dir is removed too


def test_median_row_takes_the_median_of_each_figure_and_keeps_the_spread() -> None:
    def round_row(cpu: float, p50: float, errors: int) -> dict:
        raw = {
            "latency": {"p50_ms": p50, "p99_ms": p50 * 2},
            "throughput": {"rps": 1000 / cpu, "cpu_us_per_req": cpu},
            "rss_bytes": 2**20,
            "errors": errors,
            "first_error": "boom" if errors else None,
        }
        return run.summarize("tollway", "chat", raw, None)

    row = run.median_row([round_row(300, 1.0, 0), round_row(500, 3.0, 2), round_row(320, 1.2, 0)])
    assert row["cpu_us_per_req"] == 320 and row["p50_ms"] == 1.2
    assert (row["cpu_us_per_req_min"], row["cpu_us_per_req_max"]) == (300, 500)
    assert row["rounds"] == 3 and row["errors"] == 2 and row["first_error"] == "boom"
    assert len(row["raw"]) == 3
