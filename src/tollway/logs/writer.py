"""The request-log writer.

Each finished request is one record: its log row plus its charge. A record is
1. appended to the local journal — durable against a process kill — before the answer goes out.
   Appends are grouped per event-loop turn: every request finishing in the same turn shares one
   write system call (group commit), and the answer waits for it (`await submit(...)`);
2. committed to the database with the rest of its batch every `log_flush_interval_s`, log rows
   and charges in one transaction (billing/settlement.py), after which the journal segment goes.
Nothing is lost on graceful shutdown: close() journals and commits what is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tollway.billing.journal import Journal
from tollway.billing.settlement import commit_records

log = logging.getLogger("tollway.logs")

Committed = Callable[[], None]


@dataclass(slots=True)
class _Batch:
    records: list[dict[str, Any]]
    callbacks: list[Committed]
    segment: Path | None
    retried: bool = False


class LogWriter:
    def __init__(self, engine: Engine, journal: Journal) -> None:
        self._engine = engine
        self._journal = journal
        self._unjournaled: list[dict[str, Any]] = []
        self._journaled_signal: asyncio.Future[None] | None = None
        self._pending: list[dict[str, Any]] = []  # journaled, not yet committed
        self._callbacks: list[Committed] = []
        # Batches not yet committed, oldest first, with their segments and whether an attempt
        # already failed (then the retry must skip rows a lost acknowledgement did commit).
        self._batches: list[_Batch] = []
        self._flush_lock = asyncio.Lock()

    def submit(self, record: dict[str, Any], on_committed: Committed | None = None) -> asyncio.Future[None]:
        """Queue a record; the returned future resolves once it is in the journal. Await it
        before answering when the record carries a charge."""
        self._unjournaled.append(record)
        if on_committed is not None:
            self._callbacks.append(on_committed)
        if self._journaled_signal is None:
            loop = asyncio.get_running_loop()
            self._journaled_signal = loop.create_future()
            loop.call_soon(self._write_journal)
        return self._journaled_signal

    def _write_journal(self) -> None:
        records, self._unjournaled = self._unjournaled, []
        signal, self._journaled_signal = self._journaled_signal, None
        try:
            if records:
                self._journal.append_many(records)
                self._pending.extend(records)
        except Exception as exc:  # a full disk: the waiting requests must not hang
            log.exception("journal write failed")
            if signal is not None and not signal.done():
                signal.set_exception(exc)
            return
        if signal is not None and not signal.done():
            signal.set_result(None)

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
                # Taken together with the rotation, with no await in between: the closed segment
                # holds exactly this batch.
                self._batches.append(_Batch(self._pending, self._callbacks, self._journal.rotate()))
                self._pending, self._callbacks = [], []
            while self._batches:
                batch = self._batches[0]
                try:
                    await asyncio.to_thread(commit_records, self._engine, batch.records, dedupe=batch.retried)
                except Exception:
                    batch.retried = True
                    raise
                self._batches.pop(0)
                if batch.segment is not None:
                    Journal.discard(batch.segment)
                for callback in batch.callbacks:
                    callback()

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.flush()
            except Exception:
                # The records are safe in the journal; keep them queued and try again.
                log.exception("request log commit failed; %d batches waiting", len(self._batches))
                await asyncio.sleep(min(5.0, interval_s * 20))

    async def close(self) -> None:
        self._write_journal()
        await self.flush()
        self._journal.close()
