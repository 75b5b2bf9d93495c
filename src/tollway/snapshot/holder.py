"""Holds the current Snapshot and swaps it when the config version changes.

Readers just take `holder.current` (one attribute read, atomic in CPython); a background task
polls the one-row config_version table and rebuilds off the event loop when it moved.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from tollway.accounts.credentials import CredentialBox
from tollway.snapshot.builder import build_snapshot
from tollway.snapshot.model import Snapshot
from tollway.store.db import read_config_version

log = logging.getLogger("tollway.snapshot")


class SnapshotHolder:
    def __init__(self, engine: Engine, box: CredentialBox) -> None:
        self._engine = engine
        self._box = box
        self.current: Snapshot = build_snapshot(engine, box)

    def _read_version(self) -> int:
        with self._engine.connect() as conn:
            return read_config_version(conn)

    async def refresh_if_changed(self) -> bool:
        version = await asyncio.to_thread(self._read_version)
        if version == self.current.version:
            return False
        self.current = await asyncio.to_thread(build_snapshot, self._engine, self._box)
        log.info("config version %s loaded", self.current.version)
        return True

    async def watch(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh_if_changed()
            except Exception:  # a database hiccup must not stop config updates for good
                log.exception("config refresh failed; keeping version %s", self.current.version)
