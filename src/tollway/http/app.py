"""Assembles one gateway process: store, snapshot, ledger, log writer, upstream client, routes,
and the background tasks that keep them current."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import hashlib
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from sqlalchemy import Engine

from tollway.accounts.credentials import CredentialBox
from tollway.billing import leases
from tollway.billing.journal import Journal
from tollway.billing.ledger import Ledger
from tollway.config import Settings
from tollway.http.admin_api import setup_admin_api
from tollway.http.relay import GATEWAY_KEY, TRUST_FORWARDED_KEY, add_fallback_route, add_relay_routes
from tollway.logs.writer import LogWriter
from tollway.pipeline.runner import Gateway
from tollway.pipeline.steps import MAX_BODY_BYTES
from tollway.pipeline.upstream import UpstreamClient
from tollway.providers import tokens
from tollway.snapshot.holder import SnapshotHolder
from tollway.store.db import make_engine

log = logging.getLogger("tollway")

LEASE_MAINTENANCE_S = 2.0
_SEGMENT = re.compile(r"worker-(\d+)\.\d+\.jsonl$")


class DataDirBusy(RuntimeError):
    pass


@dataclass
class Runtime:
    gateway: Gateway
    lock_fd: int
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


RUNTIME_KEY = web.AppKey("runtime", Runtime)


def _holder_id(settings: Settings, worker_index: int) -> str:
    # Stable across restarts of the same worker, so a restart can reclaim what a crash left leased.
    place = hashlib.sha256(str(settings.data_path.resolve()).encode()).hexdigest()[:12]
    return f"{socket.gethostname()}:{place}:w{worker_index}"


def _lock_worker_slot(journal_dir: os.PathLike[str], worker_index: int) -> int:
    os.makedirs(journal_dir, exist_ok=True)
    path = os.path.join(journal_dir, f"worker-{worker_index}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirBusy(
            f"another Tollway process is already serving from {journal_dir} as worker {worker_index}; "
            "stop it, or give this one its own --data-dir"
        ) from None
    return fd


def _recover_retired_workers(settings: Settings, engine: Engine, journal_dir: Path) -> None:
    """A crash followed by a restart with fewer --workers would strand the journals of the
    workers that no longer start: worker 0 commits them and releases their leases."""
    retired = sorted(
        {int(m.group(1)) for p in journal_dir.glob("worker-*.jsonl") if (m := _SEGMENT.match(p.name))}
        - set(range(settings.workers))
    )
    for index in retired:
        try:
            fd = _lock_worker_slot(journal_dir, index)
        except DataDirBusy:
            continue  # that worker is alive after all (another serve on this data dir)
        try:
            replayed = LogWriter(engine, Journal(journal_dir, name=f"worker-{index}")).replay_journal()
            leases.release_holder(engine, _holder_id(settings, index))
            log.warning("committed %d requests journaled by retired worker %d", replayed, index)
        finally:
            os.close(fd)


def build_app(settings: Settings, *, worker_index: int = 0) -> web.Application:
    """Everything here that touches the database runs before the server accepts requests:
    the journal of a previous run is committed and its leases released first."""
    engine = make_engine(settings.effective_database_url)
    box = CredentialBox(settings.secret_key)
    journal_dir = settings.data_path / "journal"
    lock_fd = _lock_worker_slot(journal_dir, worker_index)
    journal = Journal(journal_dir, name=f"worker-{worker_index}", fsync=settings.journal_fsync)
    writer = LogWriter(engine, journal)
    replayed = writer.replay_journal()
    if replayed:
        log.warning("committed %d requests journaled by a previous run that stopped abruptly", replayed)
    holder = _holder_id(settings, worker_index)
    leases.release_holder(engine, holder)
    if worker_index == 0:
        _recover_retired_workers(settings, engine, journal_dir)
    gateway = Gateway(
        settings,
        SnapshotHolder(engine, box),
        Ledger(engine, holder=holder, lease_ttl_s=settings.lease_ttl_s),
        writer,
        UpstreamClient(
            connect_timeout_s=settings.upstream_connect_timeout_s, read_timeout_s=settings.upstream_read_timeout_s
        ),
    )

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[GATEWAY_KEY] = gateway
    app[TRUST_FORWARDED_KEY] = settings.trust_forwarded_for
    app[RUNTIME_KEY] = Runtime(gateway=gateway, lock_fd=lock_fd)
    add_relay_routes(app)
    setup_admin_api(app, engine, box, extra_admin_token=settings.admin_token)
    add_fallback_route(app)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


async def _start(app: web.Application) -> None:
    runtime = app[RUNTIME_KEY]
    gateway = runtime.gateway
    settings = gateway.settings
    await gateway.upstream.start()
    runtime.tasks = [
        asyncio.create_task(gateway.snapshots.watch(settings.config_poll_interval_s)),
        asyncio.create_task(gateway.writer.run(settings.log_flush_interval_s)),
        asyncio.create_task(gateway.ledger.run_maintenance(LEASE_MAINTENANCE_S)),
    ]
    _tune_garbage_collector()
    if any(channel.type == "demo" for channel in gateway.snapshots.current.channels):
        # The demo model counts every answer's tokens: load the tables (about 1 s) in the
        # background now rather than on the first demo request.
        runtime.tasks.append(asyncio.create_task(asyncio.to_thread(tokens.preload)))


def _tune_garbage_collector() -> None:
    """The gateway's heap is mostly long-lived (libraries, snapshot) while each request makes
    short-lived garbage. Freezing what exists at start keeps every collection from walking it,
    and a larger young generation means far fewer collections per request: together this took
    about a fifth off the CPU per streamed request (bench/run.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


async def _stop(app: web.Application) -> None:
    """Runs after in-flight requests finished: flush every log row and charge, then hand back
    leases, so a graceful stop loses nothing and holds nothing."""
    runtime = app[RUNTIME_KEY]
    for task in runtime.tasks:
        task.cancel()
    for task in runtime.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    gateway = runtime.gateway
    await gateway.writer.close()
    await gateway.ledger.release_all()
    await gateway.upstream.close()
    os.close(runtime.lock_fd)
