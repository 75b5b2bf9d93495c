from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, insert

from tests.admin.expect import gateway_error
from tollway.admin import users
from tollway.logs.query import LogFilter, get_log, parse_time, query_logs
from tollway.pipeline.errors import BAD_REQUEST, NOT_FOUND
from tollway.store.db import now_ms
from tollway.store.tables import request_logs

T0 = 1_796_317_200_000  # 2026-12-03T17:00:00Z


def _row(n: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "request_id": f"req_{n:04d}",
        "created_at_ms": T0 + n * 1000,
        "user_id": None,
        "user_name": None,
        "key_id": None,
        "endpoint": "/v1/chat/completions",
        "inbound_format": "openai",
        "requested_model": "gpt-4o",
        "status_code": 200,
        "error_code": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "usage_source": "reported",
        "cost_nano": 1_500_000,
        "charged": True,
    }
    assert set(overrides) <= set(row)  # an executemany takes its columns from the first row
    row.update(overrides)
    return row


@pytest.fixture
def logged(engine: Engine) -> Engine:
    bob = users.create_user(engine, "bob")["id"]
    amy = users.create_user(engine, "amy")["id"]
    rows = [
        _row(1, user_id=bob, user_name="bob", key_id=1),
        _row(2, user_id=bob, user_name="bob", key_id=1, status_code=502, error_code="upstream_error", charged=False),
        _row(3, user_id=amy, user_name="amy", key_id=2, requested_model="claude-3"),
        _row(4, user_id=amy, user_name="amy", key_id=2, status_code=429, error_code="rate_limited"),
        _row(5, user_id=77, user_name="gone", key_id=9),  # a user deleted since
        _row(6, user_id=bob, user_name="bob", key_id=1, usage_source="estimated", cost_nano=0),
    ]
    with engine.begin() as conn:
        conn.execute(insert(request_logs), rows)
    return engine


def _ids(engine: Engine, **filters: Any) -> list[str]:
    return [row["request_id"] for row in query_logs(engine, LogFilter(**filters))]


def test_filters_combine_and_results_are_newest_first(logged: Engine) -> None:
    assert _ids(logged) == ["req_0006", "req_0005", "req_0004", "req_0003", "req_0002", "req_0001"]
    assert _ids(logged, user="bob") == ["req_0006", "req_0002", "req_0001"]
    assert _ids(logged, user="gone") == ["req_0005"]
    assert _ids(logged, user="nobody") == []
    assert _ids(logged, key_id=2) == ["req_0004", "req_0003"]
    assert _ids(logged, model="claude-3") == ["req_0003"]
    assert _ids(logged, status="error") == ["req_0004", "req_0002"]
    assert _ids(logged, status="ok") == ["req_0006", "req_0005", "req_0003", "req_0001"]
    assert _ids(logged, status=502) == ["req_0002"]
    assert _ids(logged, status="429") == ["req_0004"]
    assert _ids(logged, request_id="req_0003") == ["req_0003"]
    assert _ids(logged, start_ms=T0 + 2000, end_ms=T0 + 4000) == ["req_0003", "req_0002"]
    assert _ids(logged, user="bob", status="ok", start_ms=T0 + 1500) == ["req_0006"]
    assert _ids(logged, limit=2) == ["req_0006", "req_0005"]
    assert _ids(logged, limit=2, offset=2) == ["req_0004", "req_0003"]


def test_rows_carry_every_column_plus_readable_time_and_cost(logged: Engine) -> None:
    [row] = query_logs(logged, LogFilter(request_id="req_0001"))
    assert set(request_logs.c.keys()) <= set(row)
    assert orjson.loads(orjson.dumps(row)) == row  # the REST API serializes it as-is
    assert row["created_at"] == "2026-12-03T17:00:01Z"
    assert (row["cost_nano"], row["cost_usd"]) == (1_500_000, "0.0015")
    assert row["charged"] is True and row["is_stream"] is False
    assert get_log(logged, "req_0001") == row
    failed = get_log(logged, "req_0002")
    assert (failed["status_code"], failed["error_code"], failed["charged"]) == (502, "upstream_error", False)
    with gateway_error(NOT_FOUND, param="request_id", match="no request `req_9999`"):
        get_log(logged, "req_9999")


@pytest.mark.parametrize(
    ("filters", "param"),
    [
        ({"status": "bad"}, "status"),
        ({"status": 42}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_bad_filters(sqlite_engine: Engine, filters: dict[str, Any], param: str) -> None:
    with gateway_error(BAD_REQUEST, param=param):
        query_logs(sqlite_engine, LogFilter(**filters))


def test_parse_time() -> None:
    before = now_ms()
    assert before - 900_000 <= parse_time("15m") <= now_ms() - 900_000
    assert parse_time("2026-12-03T17:00:00Z") == T0
    assert parse_time("2026-12-03 17:00") == T0
    with gateway_error(BAD_REQUEST, param="since", match="not a time"):
        parse_time("an hour ago", param="since")
    with gateway_error(BAD_REQUEST, param="time"):
        parse_time("1y")
