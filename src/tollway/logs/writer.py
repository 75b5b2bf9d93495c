"""The request-log writer: records go to the journal at once (durable before the answer is
sent) and to the database in batches every few tens of milliseconds, log rows and charges
together (billing/settlement.py). Nothing is lost on graceful shutdown: close() flushes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tollway.billing.journal import Journal
from tollway.billing.settlement import commit_records

log = logging.getLogger("tollway.logs")

Committed = Callable[[], None]


class LogWriter:
    def __init__(self, engine: Engine, journal: Journal) -> None:
        self._engine = engine
        self._journal = journal
        self._pending: list[dict[str, Any]] = []
        self._callbacks: list[Committed] = []
        # Batches whose commit failed: retried, with their segments, before anything newer.
        self._retry: list[tuple[list[dict[str, Any]], list[Committed], Path | None]] = []
        self._flush_lock = asyncio.Lock()

    def submit(self, record: dict[str, Any], on_committed: Committed | None = None) -> None:
        """Durable when this returns (journal append); committed to the database shortly."""
        self._journal.append(record)
        self._pending.append(record)
        if on_committed is not None:
            self._callbacks.append(on_committed)

    def replay_journal(self) -> int:
        """On start: commit what a previous run journaled but did not commit, then drop it."""
        replayed = 0
        for segment in self._journal.segments():
            replayed += commit_records(self._engine, Journal.read(segment))
            Journal.discard(segment)
        return replayed

    async def flush(self) -> None:
        async with self._flush_lock:
            if self._pending:
                batch, callbacks = self._pending, self._callbacks
                self._pending, self._callbacks = [], []
                self._retry.append((batch, callbacks, self._journal.rotate()))
            while self._retry:
                batch, callbacks, segment = self._retry[0]
                await asyncio.to_thread(commit_records, self._engine, batch)
                self._retry.pop(0)
                if segment is not None:
                    Journal.discard(segment)
                for callback in callbacks:
                    callback()

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.flush()
            except Exception:
                # The records are safe in the journal; keep them queued and try again.
                log.exception("request log commit failed; %d batches waiting", len(self._retry))
                await asyncio.sleep(min(5.0, interval_s * 20))

    async def close(self) -> None:
        await self.flush()
        self._journal.close()
