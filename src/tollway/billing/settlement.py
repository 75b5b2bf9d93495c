"""Commits a batch of finished requests: their log rows and their charges in ONE transaction,
so there is never a charge without a log row or a log row without its charge.

Idempotent when asked (`dedupe=True`, used for journal replay and for retries): a request whose
log row is already stored is skipped whole, so a segment that was (partly) committed before a
crash changes nothing twice. A first attempt from the live writer skips that lookup: its records
are new by construction, and the unique request id would refuse a duplicate anyway.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, bindparam, select, update

from tollway.store.tables import api_keys, leases, ledger_entries, request_logs, users

_CHUNK = 500

# Log rows are the bulk of every batch. They are inserted with one prepared statement and plain
# tuples, skipping SQLAlchemy's per-row parameter processing, which cost more CPU than the rest
# of a request's bookkeeping together (measured with bench/run.py).
_LOG_COLUMNS = tuple(c.name for c in request_logs.columns if c.name != "id")
_LOG_DEFAULTS = {
    c.name: c.default.arg for c in request_logs.columns if c.default is not None and not callable(c.default.arg)
}


_LOG_ROW = operator.itemgetter(*_LOG_COLUMNS)
_LEDGER_COLUMNS = ("request_id", "kind", "user_id", "key_id", "amount_nano", "note", "created_at_ms")


def _insert_sql(conn: Any, table: str, columns: tuple[str, ...]) -> str:
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marker for _ in columns)})"


def _insert_logs(conn: Any, rows: list[dict[str, Any]]) -> None:
    complete = len(_LOG_COLUMNS)
    values = [
        _LOG_ROW(row)
        if len(row) >= complete
        else _LOG_ROW({name: _LOG_DEFAULTS.get(name) for name in _LOG_COLUMNS} | row)
        for row in rows
    ]
    conn.exec_driver_sql(_insert_sql(conn, request_logs.name, _LOG_COLUMNS), values)


def commit_records(engine: Engine, records: list[dict[str, Any]], *, dedupe: bool = True) -> int:
    """Returns how many records were new."""
    if not records:
        return 0
    with engine.begin() as conn:
        fresh = _unstored(conn, records) if dedupe else records
        if not fresh:
            return 0
        _insert_logs(conn, [r["log"] for r in fresh])
        charges = [r for r in fresh if r.get("charge")]
        if charges:
            _apply_charges(conn, charges)
    return len(fresh)


def _unstored(conn: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [r["log"]["request_id"] for r in records]
    stored: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        stored.update(
            conn.execute(select(request_logs.c.request_id).where(request_logs.c.request_id.in_(chunk))).scalars()
        )
    fresh = []
    for record in records:
        rid = record["log"]["request_id"]
        if rid not in stored:
            stored.add(rid)  # also drops a repeat inside the same batch
            fresh.append(record)
    return fresh


def _apply_charges(conn: Any, records: list[dict[str, Any]]) -> None:
    entries = []
    by_user: dict[int, int] = defaultdict(int)
    by_key: dict[int, int] = defaultdict(int)
    by_lease: dict[int, int] = defaultdict(int)
    for record in records:
        charge, log = record["charge"], record["log"]
        amount = int(charge["amount_nano"])
        entries.append(
            (
                log["request_id"],
                "charge",
                charge["user_id"],
                charge["key_id"],
                -amount,
                log["requested_model"] or "",
                log["created_at_ms"],
            )
        )
        by_user[charge["user_id"]] += amount
        if charge["key_id"] is not None:
            by_key[charge["key_id"]] += amount
        for lease_id in (charge.get("user_lease_id"), charge.get("key_lease_id")):
            if lease_id is not None:
                by_lease[lease_id] += amount
    conn.exec_driver_sql(_insert_sql(conn, ledger_entries.name, _LEDGER_COLUMNS), entries)
    _add(conn, users.c.balance_nano, {uid: -amount for uid, amount in by_user.items()})
    _add(conn, api_keys.c.spent_nano, by_key)
    _add(conn, leases.c.used_nano, by_lease)


def _add(conn: Any, column: Any, deltas: dict[int, int]) -> None:
    """column += delta for each row id, as one executemany; atomic SQL, never read-modify-write."""
    if not deltas:
        return
    table = column.table
    conn.execute(
        update(table).where(table.c.id == bindparam("row_id")).values({column.name: column + bindparam("delta")}),
        [{"row_id": row_id, "delta": delta} for row_id, delta in deltas.items()],
    )
