"""Tollway's benchmark, in one command: `python bench/run.py` from the repo root.

Starts a canned upstream, the floor pass-through proxy and Tollway (each its own process on
127.0.0.1), drives each with the same load from a separate load-generator process, prints one
table and writes the numbers to bench/results/<timestamp>.json. README.md beside this file says
what each number means. Every process started here is stopped before it returns, on error and on
Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PYTHON = sys.executable
SCENARIOS = ("chat", "stream")
TARGETS = ("direct", "floor", "tollway")
AUTH_ENV = "BENCH_AUTHORIZATION"  # how load.py receives the API key (never on a command line)
# The goals the ratio lines are judged against.
CPU_RATIO_TARGET = 1.5
ADDED_P50_TARGET_MS = 1.0
STOP_GRACE_S = 5.0


class BenchError(Exception):
    """The bench could not run (a server would not start, a load run failed)."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path | None
    log_file: IO[bytes] | None = None

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = _redact(self.log_path.read_text(errors="replace")).splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"


@dataclass
class Children:
    """Every process the bench starts, so each can be stopped whatever happens."""

    items: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path | None,
        env: dict[str, str] | None = None,
        stdout_pipe: bool = False,
    ) -> Child:
        log_file = log_path.open("wb") if log_path else None
        sink: IO[bytes] | int = log_file if log_file else subprocess.DEVNULL
        # Own session: Ctrl-C reaches only this script, which then stops children in order, and
        # a child's own workers (if any) share its process group and are stopped with it.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else sink,
            stderr=sink,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        child = Child(name, proc, log_path, log_file)
        self.items.append(child)
        return child

    def stop(self, child: Child) -> None:
        proc = child.proc
        if proc.poll() is None:
            # Not yet reaped, so its pid (and process group id) is still ours to signal.
            try:
                descendants = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                descendants = []
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(STOP_GRACE_S)
            # Workers that outlive their parent; psutil checks each is still the same process.
            _, alive = psutil.wait_procs(descendants, timeout=STOP_GRACE_S)
            for leftover in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    leftover.kill()
        if proc.stdout:
            proc.stdout.close()
        if child.log_file:
            child.log_file.close()
        if child in self.items:
            self.items.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.items)):
            with contextlib.suppress(Exception):
                self.stop(child)


# Tollway prints a first admin token on start-up; error output quotes logs, never secrets.
_SECRET = re.compile(r"\b(tw-admin-|sk-)[A-Za-z0-9_\-]{8,}")


def _redact(text: str) -> str:
    return _SECRET.sub(lambda m: m.group(1) + "…(redacted)", text)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def clean_env() -> dict[str, str]:
    """This environment minus every TOLLWAY_* setting, so a developer's own configuration (a
    production database URL, say) can never leak into the bench."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}


def wait_for_port_file(child: Child, path: Path, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return int(path.read_text())
        if child.proc.poll() is not None:
            raise BenchError(
                f"{child.name} exited with code {child.proc.returncode} before listening:\n{child.log_tail()}"
            )
        time.sleep(0.02)
    raise BenchError(f"{child.name} did not start listening within {timeout_s:.0f} s:\n{child.log_tail()}")


def start_script_server(children: Children, name: str, script: str, workdir: Path, *extra: str) -> tuple[Child, int]:
    """Start bench/<script> on a free loopback port; return it and the port it bound."""
    port_file = workdir / f"{name}.port"
    argv = [
        PYTHON,
        str(BENCH_DIR / script),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
    ]
    child = children.start(name, [*argv, *extra], log_path=workdir / f"{name}.log", env=clean_env())
    return child, wait_for_port_file(child, port_file)


def free_port() -> int:
    # Tollway takes its port as a flag, so pick one the kernel says is free right now.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_tollway_store(data_dir: Path, upstream_port: int) -> str:
    """Create the bench's channel, price, user and key with the admin services; return the key."""
    from tollway.accounts.credentials import CredentialBox
    from tollway.admin import channels, keys, prices, users
    from tollway.config import ensure_data_dir, load_settings
    from tollway.store.db import make_engine
    from tollway.store.migrate import upgrade_to_head

    # database_url "" overrides any configured one: the bench only ever writes its temp dir.
    settings = ensure_data_dir(load_settings({"data_dir": str(data_dir), "database_url": ""}))
    engine = make_engine(settings.effective_database_url)
    try:
        upgrade_to_head(engine)
        box = CredentialBox(settings.secret_key)
        channels.create_channel(
            engine,
            box,
            "bench",
            type="openai",
            base_url=f"http://127.0.0.1:{upstream_port}/v1",
            credential="bench-upstream-key",
            models=["bench-model"],
        )
        prices.set_price(engine, "bench-model", input_usd_per_mtok="1", output_usd_per_mtok="2")
        users.create_user(engine, "bench", balance_usd="1000000")
        return keys.create_key(engine, "bench", name="bench")["key"]
    finally:
        engine.dispose()


def wait_for_tollway(child: Child, base_url: str, api_key: str, timeout_s: float = 60.0) -> None:
    request = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"})
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise BenchError(f"tollway exited with code {child.proc.returncode} during start-up:\n{child.log_tail()}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except (urllib.error.URLError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise BenchError(
        f"tollway did not answer GET /v1/models with 200 within {timeout_s:.0f} s (last: {last}):\n{child.log_tail()}"
    )


def start_tollway(children: Children, workdir: Path, upstream_port: int) -> tuple[Child, str, str]:
    data_dir = workdir / "tollway-data"
    api_key = prepare_tollway_store(data_dir, upstream_port)
    port = free_port()
    env = clean_env()
    env["TOLLWAY_DATA_DIR"] = str(data_dir)
    argv = [PYTHON, "-m", "tollway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    child = children.start("tollway", argv, log_path=workdir / "tollway.log", env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    wait_for_tollway(child, base_url, api_key)
    return child, base_url, api_key


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str
    pid: int
    api_key: str | None = None


def run_load(
    children: Children, target: Target, scenario: str, opts: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """One load-generator process against one target and scenario; return its measurements."""
    env = clean_env()
    if target.api_key:
        env[AUTH_ENV] = f"Bearer {target.api_key}"
    argv = [
        PYTHON,
        str(BENCH_DIR / "load.py"),
        "--url",
        target.base_url,
        "--scenario",
        scenario,
        "--latency-requests",
        str(opts.latency_requests),
        "--requests",
        str(opts.requests),
        "--concurrency",
        str(opts.concurrency),
        "--pid",
        str(target.pid),
        "--timeout",
        str(opts.load_timeout),
    ]
    name = f"load-{target.name}-{scenario}"
    child = children.start(name, argv, log_path=workdir / f"{name}.log", env=env, stdout_pipe=True)
    try:
        out, _ = child.proc.communicate(timeout=opts.load_timeout + 30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{name} did not finish within {opts.load_timeout + 30:.0f} s") from exc
    finally:
        children.stop(child)
    try:
        result = orjson.loads(out.splitlines()[-1]) if out.strip() else {}
    except orjson.JSONDecodeError:
        result = {}
    if not result or "error" in result:
        reason = result.get("error") if result else f"no result (exit code {child.proc.returncode})"
        raise BenchError(f"{target.name}/{scenario}: {reason}\n{child.log_tail()}")
    return result


def summarize(target: str, scenario: str, raw: dict[str, Any], direct: dict[str, Any] | None) -> dict[str, Any]:
    """One table row: the load generator's numbers plus latency added over the direct upstream."""
    latency, throughput = raw["latency"], raw["throughput"]
    row: dict[str, Any] = {
        "target": target,
        "scenario": scenario,
        "rps": throughput["rps"],
        "cpu_us_per_req": throughput["cpu_us_per_req"],
        "p50_ms": latency["p50_ms"],
        "p99_ms": latency["p99_ms"],
        "added_p50_ms": None,
        "added_p99_ms": None,
        "rss_mib": raw["rss_bytes"] / (1024 * 1024) if raw.get("rss_bytes") else None,
        "errors": raw["errors"],
        "first_error": raw["first_error"],
        "raw": raw,
    }
    if direct is not None:
        row["added_p50_ms"] = latency["p50_ms"] - direct["latency"]["p50_ms"]
        row["added_p99_ms"] = latency["p99_ms"] - direct["latency"]["p99_ms"]
    return row


MEDIAN_FIELDS = ("rps", "cpu_us_per_req", "p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms", "rss_mib")


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from several rounds of the same target and scenario: the median of each figure,
    the spread of CPU per request, every round's raw numbers, and all their errors."""
    row = dict(runs[0])
    for name in MEDIAN_FIELDS:
        values = [run[name] for run in runs if run[name] is not None]
        row[name] = statistics.median(values) if values else None
    cpu = [run["cpu_us_per_req"] for run in runs]
    row["cpu_us_per_req_min"], row["cpu_us_per_req_max"] = min(cpu), max(cpu)
    row["rounds"] = len(runs)
    row["errors"] = sum(run["errors"] for run in runs)
    row["first_error"] = next((run["first_error"] for run in runs if run["first_error"]), None)
    row["raw"] = [run["raw"] for run in runs]
    return row


def checks_for(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tollway against the floor, per scenario: CPU per request ratio and extra p50."""
    by_key = {(r["target"], r["scenario"]): r for r in rows}
    checks: list[dict[str, Any]] = []
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        tollway, floor = by_key.get(("tollway", scenario)), by_key.get(("floor", scenario))
        if tollway is None or floor is None:
            continue
        errors = tollway["errors"] + floor["errors"]
        ratio = None
        if tollway["cpu_us_per_req"] is not None and floor["cpu_us_per_req"]:
            ratio = tollway["cpu_us_per_req"] / floor["cpu_us_per_req"]
        checks.append(
            {
                "scenario": scenario,
                "name": "cpu_ratio",
                "label": "Tollway CPU/req ÷ floor CPU/req",
                "value": ratio,
                "unit": "×",
                "target": CPU_RATIO_TARGET,
                "met": ratio is not None and ratio <= CPU_RATIO_TARGET and errors == 0,
                "errors": errors,
            }
        )
        extra = None
        if tollway["added_p50_ms"] is not None and floor["added_p50_ms"] is not None:
            extra = tollway["added_p50_ms"] - floor["added_p50_ms"]
        checks.append(
            {
                "scenario": scenario,
                "name": "added_p50_over_floor",
                "label": "Tollway added p50 − floor added p50",
                "value": extra,
                "unit": "ms",
                "target": ADDED_P50_TARGET_MS,
                "met": extra is not None and extra <= ADDED_P50_TARGET_MS and errors == 0,
                "errors": errors,
            }
        )
    return checks


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def render(rows: list[dict[str, Any]], checks: list[dict[str, Any]], header: str) -> None:
    from rich.console import Console
    from rich.table import Table

    # Piped output would otherwise be squeezed into 80 columns and truncate every cell.
    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(title=header, title_justify="left")
    for column in ("target", "scenario", "rps", "CPU µs/req", "CPU range", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("target", "scenario") else "right")
    for column in ("added p50 ms", "added p99 ms", "RSS MiB", "errors"):
        table.add_column(column, justify="right")
    for row in rows:
        is_direct = row["target"] == "direct"
        table.add_row(
            row["target"],
            row["scenario"],
            _fmt(row["rps"], 0),
            _fmt(row["cpu_us_per_req"], 0),
            f"{_fmt(row.get('cpu_us_per_req_min'), 0)}–{_fmt(row.get('cpu_us_per_req_max'), 0)}",
            _fmt(row["p50_ms"], 3),
            _fmt(row["p99_ms"], 3),
            "(baseline)" if is_direct else _fmt(row["added_p50_ms"], 3),
            "(baseline)" if is_direct else _fmt(row["added_p99_ms"], 3),
            _fmt(row["rss_mib"], 1),
            str(row["errors"]) if not row["errors"] else f"[red]{row['errors']}[/red]",
        )
    console.print(table)
    for check in checks:
        verdict = "[green]met[/green]" if check["met"] else "[red]not met[/red]"
        note = f" ({check['errors']} request errors)" if check["errors"] else ""
        unit = check["unit"] if check["unit"] == "×" else f" {check['unit']}"
        value = _fmt(check["value"], 2)
        console.print(
            f"{check['scenario']:>6}: {check['label']} = {value}{unit} "
            f"(target ≤ {check['target']:g}{unit}) — {verdict}{note}"
        )
    for row in rows:
        if row["first_error"]:
            console.print(f"[red]{row['target']}/{row['scenario']} first error:[/red] {row['first_error']}")


def write_results(report: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{stamp}.json"
    suffix = 1
    while path.exists():  # two runs in the same second keep both files
        path = out_dir / f"{stamp}-{suffix}.json"
        suffix += 1
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def machine_info() -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "event_loop": loop,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark Tollway against a minimal pass-through proxy.")
    parser.add_argument("--requests", type=int, help="throughput-phase requests per run (default 3000)")
    parser.add_argument("--latency-requests", type=int, help="latency-phase requests per run (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="throughput-phase concurrency (default 32)")
    parser.add_argument("--quick", action="store_true", help="small counts for a smoke run")
    parser.add_argument(
        "--repeat", type=int, help="rounds per target and scenario; figures are medians (default 3, 1 with --quick)"
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list of: chat, stream")
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="comma list of: direct, floor, tollway (direct always runs: it is the baseline)",
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="directory for the JSON")
    parser.add_argument("--load-timeout", type=float, help="limit for one load run, seconds")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, Tollway's data)")
    opts = parser.parse_args(argv)
    opts.scenarios = _comma_list(parser, opts.scenarios, SCENARIOS, "scenario")
    targets = _comma_list(parser, opts.targets, TARGETS, "target")
    opts.targets = [t for t in TARGETS if t == "direct" or t in targets]
    if opts.requests is None:
        opts.requests = 1000 if opts.quick else 3000
    if opts.latency_requests is None:
        opts.latency_requests = 200 if opts.quick else 1000
    if opts.repeat is None:
        opts.repeat = 1 if opts.quick else 3
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    if opts.load_timeout is None:
        opts.load_timeout = 60.0 if opts.quick else 600.0
    if min(opts.requests, opts.latency_requests, opts.concurrency) < 1:
        parser.error("--requests, --latency-requests and --concurrency must be at least 1")
    return opts


def _comma_list(parser: argparse.ArgumentParser, text: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        parser.error(f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks stop every child either way."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_bench(opts: argparse.Namespace, children: Children, workdir: Path) -> dict[str, Any]:
    """Start the servers, measure every target × scenario, and return the report."""
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    upstream, upstream_port = start_script_server(children, "upstream", "upstream.py", workdir)
    upstream_origin = f"http://127.0.0.1:{upstream_port}"
    targets = [Target("direct", f"{upstream_origin}/v1", upstream.proc.pid)]
    if "floor" in opts.targets:
        floor, floor_port = start_script_server(
            children, "floor", "floor_proxy.py", workdir, "--upstream", upstream_origin
        )
        targets.append(Target("floor", f"http://127.0.0.1:{floor_port}/v1", floor.proc.pid))
    if "tollway" in opts.targets:
        tollway, base_url, api_key = start_tollway(children, workdir, upstream_port)
        targets.append(Target("tollway", base_url, tollway.proc.pid, api_key))
    rows: list[dict[str, Any]] = []
    # Scenario-major, targets interleaved, in rounds: slow drift of the machine hits every target
    # alike, and each figure is the median of its rounds (a shared VM swings run to run).
    for scenario in opts.scenarios:
        rounds: dict[str, list[dict[str, Any]]] = {target.name: [] for target in targets}
        for round_no in range(1, opts.repeat + 1):
            direct = None
            for target in targets:
                print(
                    f"measuring {target.name}/{scenario} (round {round_no}/{opts.repeat}) …",
                    file=sys.stderr,
                    flush=True,
                )
                raw = run_load(children, target, scenario, opts, workdir)
                if target.name == "direct":
                    direct = raw
                rounds[target.name].append(summarize(target.name, scenario, raw, direct))
        rows.extend(median_row(rounds[target.name]) for target in targets)
    return {
        "started_at": started_at,
        "machine": machine_info(),
        "settings": {
            "requests": opts.requests,
            "latency_requests": opts.latency_requests,
            "concurrency": opts.concurrency,
            "scenarios": opts.scenarios,
            "targets": opts.targets,
            "quick": opts.quick,
            "repeat": opts.repeat,
        },
        "goals": {
            "cpu_ratio_max": CPU_RATIO_TARGET,
            "added_p50_over_floor_max_ms": ADDED_P50_TARGET_MS,
        },
        "rows": rows,
        "checks": checks_for(rows),
    }


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    # Our own process writes Tollway's store too; keep any TOLLWAY_* configuration out of it.
    for name in [k for k in os.environ if k.startswith("TOLLWAY_")]:
        del os.environ[name]
    workdir = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    children = Children()
    try:
        with _terminate_as_interrupt():
            report = run_bench(opts, children, workdir)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench interrupted; stopping everything it started", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        if opts.keep_temp:
            print(f"temp dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    header = (
        f"Tollway bench — {report['machine']['cpus']} CPUs, {report['machine']['event_loop']}, "
        f"throughput {opts.requests} req @ c={opts.concurrency}, latency {opts.latency_requests} req @ c=1"
    )
    render(report["rows"], report["checks"], header)
    path = write_results(report, opts.out)
    print(f"results written to {path}", file=sys.stderr)
    return 1 if any(row["errors"] for row in report["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
