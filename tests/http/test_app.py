import os
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tollway.admin import users
from tollway.billing.journal import Journal
from tollway.config import ensure_data_dir, load_settings
from tollway.http.app import RUNTIME_KEY, DataDirBusy, build_app
from tollway.store.db import make_engine
from tollway.store.migrate import upgrade_to_head
from tollway.store.tables import request_logs


def _settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = ensure_data_dir(load_settings({"data_dir": str(tmp_path / "data")}))
    upgrade_to_head(make_engine(settings.effective_database_url))
    return settings


def test_journal_of_a_retired_worker_is_committed_by_worker_zero(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    engine = make_engine(settings.effective_database_url)
    uid = users.create_user(engine, "u", balance_usd="1")["id"]
    # A crashed 4-worker run left worker 3's journal behind; now only 2 workers start.
    orphan = Journal(settings.data_path / "journal", name="worker-3")
    orphan.append(
        {
            "log": {
                "request_id": "req_orphan",
                "created_at_ms": 1,
                "endpoint": "/v1/chat/completions",
                "inbound_format": "openai",
                "requested_model": "m",
                "status_code": 200,
                "cost_nano": 5,
                "charged": True,
                "user_id": uid,
            },
            "charge": {"user_id": uid, "key_id": None, "amount_nano": 5, "user_lease_id": None, "key_lease_id": None},
        }
    )
    orphan.close()
    app = build_app(replace(settings, workers=2), worker_index=0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(request_logs)).scalar_one() == 1
    assert users.get_user(engine, "u")["balance_nano"] == 1_000_000_000 - 5
    assert not list((settings.data_path / "journal").glob("worker-3.*.jsonl"))
    os.close(app[RUNTIME_KEY].lock_fd)


def test_two_processes_cannot_serve_the_same_worker_slot(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = build_app(settings, worker_index=0)
    with pytest.raises(DataDirBusy, match="already serving"):
        build_app(settings, worker_index=0)
    os.close(first[RUNTIME_KEY].lock_fd)
    second = build_app(settings, worker_index=0)  # free again once the first let go
    os.close(second[RUNTIME_KEY].lock_fd)
