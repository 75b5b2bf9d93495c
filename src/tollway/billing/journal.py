"""A local append-only journal: every settled request is written here before its answer is
sent, so a process killed right after answering loses no charge. Segments are rotated at each
batch commit and deleted once the database has the batch; on start, leftover segments are
replayed (idempotently) and removed.

Appends are one os.write of JSON lines: once written, the kernel keeps them even if the process
is SIGKILLed. Set journal_fsync to also survive a power loss, at the price of an fsync per request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


class Journal:
    def __init__(self, directory: Path, *, name: str, fsync: bool = False) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._name = name
        self._fsync = fsync
        existing = self.segments()
        self._seq = (int(existing[-1].name.rsplit(".", 2)[-2]) + 1) if existing else 1
        self._fd = -1
        self._current: Path | None = None
        self._current_has_data = False

    def segments(self) -> list[Path]:
        """Segments on disk, oldest first."""
        return sorted(self._dir.glob(f"{self._name}.*.jsonl"), key=lambda p: int(p.name.rsplit(".", 2)[-2]))

    def _open_next(self) -> None:
        self._current = self._dir / f"{self._name}.{self._seq:012d}.jsonl"
        self._seq += 1
        self._fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._current_has_data = False

    def append(self, record: dict[str, Any]) -> None:
        self.append_many([record])

    def append_many(self, records: list[dict[str, Any]]) -> None:
        """One write (and at most one fsync) for all of them."""
        if self._fd < 0:
            self._open_next()
        data = b"".join(orjson.dumps(record) + b"\n" for record in records)
        while data:  # os.write may write less than asked (a signal, a nearly full disk)
            written = os.write(self._fd, data)
            data = data[written:]
        if self._fsync:
            os.fsync(self._fd)
        self._current_has_data = True

    def rotate(self) -> Path | None:
        """Close the segment being written (its records are the batch about to be committed)
        and return it; the next append starts a new one."""
        if self._fd < 0 or not self._current_has_data:
            return None
        os.close(self._fd)
        self._fd = -1
        return self._current

    @staticmethod
    def discard(segment: Path) -> None:
        segment.unlink(missing_ok=True)

    @staticmethod
    def read(segment: Path) -> list[dict[str, Any]]:
        records = []
        for line in segment.read_bytes().splitlines():
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # a torn last line from a crash mid-write: that answer was never sent
        return records

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._current is not None and not self._current_has_data:
            self._current.unlink(missing_ok=True)
