from pathlib import Path

import orjson
from sqlalchemy import insert

from tests.cli.conftest import Invoke
from tollway.store.db import make_engine, now_ms, sqlite_url_for
from tollway.store.tables import request_logs


def _insert_logs(data_dir: Path) -> None:
    # Every row names the same columns: an executemany takes its column list from the first row.
    base = {
        "endpoint": "/v1/chat/completions",
        "inbound_format": "openai",
        "user_name": "bob",
        "user_id": 1,
        "error_code": None,
        "failure_reason": None,
    }
    rows = [
        {**base, "request_id": "req_old", "created_at_ms": now_ms() - 3 * 3_600_000, "status_code": 200,
         "requested_model": "gpt-4o", "key_id": 1, "key_name": "ci", "prompt_tokens": 12,
         "completion_tokens": 3, "usage_source": "reported", "cost_nano": 1_500_000, "charged": True},
        {**base, "request_id": "req_new", "created_at_ms": now_ms() - 60_000, "status_code": 502,
         "error_code": "upstream_error", "requested_model": "gpt-4o", "key_id": 1, "key_name": "ci",
         "prompt_tokens": 40, "completion_tokens": 7, "usage_source": "estimated", "cost_nano": 0,
         "charged": False, "failure_reason": "upstream closed the connection"},
    ]  # fmt: skip
    engine = make_engine(sqlite_url_for(data_dir))
    with engine.begin() as conn:
        conn.execute(insert(request_logs), rows)
    engine.dispose()


def test_list_and_show(tollway: Invoke, data_dir: Path) -> None:
    assert tollway("logs", "list").stdout.strip() == "No requests match."  # also creates the store
    _insert_logs(data_dir)

    table = tollway("logs", "list").stdout
    assert table.index("req_new") < table.index("req_old")
    assert "502 upstream_error" in table and "~40/~7" in table and "12/3" in table
    assert "$0.0015" in table and "1 ci" in table

    def ids(*args: str) -> list[str]:
        result = tollway("logs", "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [row["request_id"] for row in orjson.loads(result.stdout)]

    assert ids("--since", "1h") == ["req_new"]
    assert ids("--until", "1h") == ["req_old"]
    assert ids("--status", "error") == ["req_new"]
    assert ids("--status", "200", "--user", "bob", "--key", "1", "--model", "gpt-4o") == ["req_old"]
    assert ids("--request-id", "req_old") == ["req_old"]
    assert ids("--limit", "1") == ["req_new"]
    assert ids("--model", "claude") == []

    shown = tollway("logs", "show", "req_new")
    assert "upstream closed the connection" in shown.stdout
    assert orjson.loads(tollway("logs", "show", "req_new", "--json").stdout)["cost_usd"] == "0"

    bad = tollway("logs", "list", "--since", "yesterday")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: since `yesterday` is not a time")
    assert tollway("logs", "list", "--status", "teapot").exit_code == 1
    assert tollway("logs", "list", "--limit", "5000").exit_code == 1
    assert tollway("logs", "show", "req_missing").exit_code == 1
