from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from tollway.admin import users
from tollway.billing.journal import Journal
from tollway.logs.writer import LogWriter
from tollway.store.tables import request_logs


def _record(rid: str, uid: int) -> dict:
    return {
        "log": {
            "request_id": rid,
            "created_at_ms": 1,
            "endpoint": "/v1/chat/completions",
            "inbound_format": "openai",
            "requested_model": "m",
            "status_code": 200,
            "cost_nano": 7,
            "charged": True,
            "user_id": uid,
        },
        "charge": {"user_id": uid, "key_id": None, "amount_nano": 7, "user_lease_id": None, "key_lease_id": None},
    }


def _rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(request_logs)).scalar_one())


async def test_records_are_journaled_before_the_future_resolves_and_committed_on_flush(
    engine: Engine, tmp_path: Path
) -> None:
    uid = users.create_user(engine, "u", balance_usd="1")["id"]
    journal = Journal(tmp_path, name="w0")
    writer = LogWriter(engine, journal)
    committed: list[str] = []
    await writer.submit(_record("req_a", uid), on_committed=lambda: committed.append("a"))
    assert [Journal.read(s) for s in journal.segments()] == [[_record("req_a", uid)]]
    assert _rows(engine) == 0 and committed == []
    await writer.flush()
    assert _rows(engine) == 1 and committed == ["a"]
    assert journal.segments() == []  # committed segments are removed
    await writer.close()


async def test_a_failed_commit_is_retried_and_lands_exactly_once(engine: Engine, tmp_path: Path) -> None:
    uid = users.create_user(engine, "u", balance_usd="1")["id"]
    writer = LogWriter(engine, Journal(tmp_path, name="w0"))
    await writer.submit(_record("req_a", uid))
    with engine.begin() as conn:  # the database refuses writes for a while
        conn.execute(text("ALTER TABLE request_logs RENAME TO request_logs_away"))
    with pytest.raises(Exception, match="request_logs"):
        await writer.flush()
    await writer.submit(_record("req_b", uid))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE request_logs_away RENAME TO request_logs"))
    await writer.flush()
    assert _rows(engine) == 2
    assert users.get_user(engine, "u")["balance_nano"] == 1_000_000_000 - 14
    await writer.close()


async def test_close_commits_what_is_still_queued(engine: Engine, tmp_path: Path) -> None:
    uid = users.create_user(engine, "u", balance_usd="1")["id"]
    writer = LogWriter(engine, Journal(tmp_path, name="w0"))
    writer.submit(_record("req_a", uid))  # not awaited: still queued when the server stops
    await writer.close()
    assert _rows(engine) == 1
