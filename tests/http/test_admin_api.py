"""The admin REST API against a real aiohttp server on 127.0.0.1, over SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import Engine, insert, select, text

from tollway.accounts.credentials import CredentialBox
from tollway.accounts.keys import hash_secret
from tollway.admin import keys as key_service
from tollway.admin import tokens
from tollway.admin import users as user_service
from tollway.http import admin_schemas as s
from tollway.http.admin_api import setup_admin_api
from tollway.store.db import now_ms
from tollway.store.tables import channels, request_logs

REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")
EXTRA_TOKEN = "extra-admin-token-for-tests"


@dataclass
class Reply:
    status: int
    headers: Any
    text: str

    @property
    def json(self) -> Any:
        return orjson.loads(self.text)

    @property
    def error(self) -> dict[str, Any]:
        return self.json["error"]


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession
    token: str

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        token: str | None = "",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """`token=""` uses the admin token, None sends no Authorization header."""
        sent = dict(headers or {})
        use = self.token if token == "" else token
        if use is not None:
            sent["Authorization"] = f"Bearer {use}"
        body = orjson.dumps(json) if json is not None else data
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.base + path, data=body, headers=sent) as resp:
            return Reply(resp.status, resp.headers, await resp.text())


@asynccontextmanager
async def admin_server(engine: Engine, box: CredentialBox) -> AsyncIterator[Api]:
    app = web.Application()
    setup_admin_api(app, engine, box, extra_admin_token=EXTRA_TOKEN)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    token = tokens.create_admin_token(engine, "tests")
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(f"http://127.0.0.1:{port}", session, token)
    finally:
        await runner.cleanup()


@pytest.fixture
async def api(engine: Engine, credential_box: CredentialBox) -> AsyncIterator[Api]:
    async with admin_server(engine, credential_box) as client:
        yield client


@pytest.fixture
async def sqlite_api(sqlite_engine: Engine, credential_box: CredentialBox) -> AsyncIterator[Api]:
    """For tests of the HTTP layer itself, where the database backend is not the subject."""
    async with admin_server(sqlite_engine, credential_box) as client:
        yield client


def shaped(model: type[BaseModel], payload: Any) -> Any:
    """The documented response model must describe the real response exactly (no missing or
    undocumented fields), so the OpenAPI document cannot drift from the services."""
    model.model_validate(payload)
    return payload


def assert_ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, reply.text
    assert REQUEST_ID.match(reply.headers["X-Request-Id"])
    return reply.json if reply.text else None


def assert_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.text
    err = reply.error
    assert err["code"] == code
    assert err["request_id"] == reply.headers["X-Request-Id"]
    assert REQUEST_ID.match(err["request_id"])
    assert set(err) == {"message", "type", "param", "code", "request_id"}
    return err


# --- meta and auth ------------------------------------------------------------------------------


async def test_health_needs_no_auth_and_every_response_has_a_request_id(sqlite_api: Api) -> None:
    first = await sqlite_api.call("GET", "/api/health", token=None)
    second = await sqlite_api.call("GET", "/api/health", token=None)
    assert shaped(s.HealthOut, assert_ok(first)) == {"status": "ok"}
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


async def test_auth_refuses_missing_wrong_and_api_key_tokens(api: Api, engine: Engine) -> None:
    missing = assert_error(await api.call("GET", "/api/users", token=None), 401, "admin_unauthorized")
    assert "Authorization: Bearer" in missing["message"]

    basic = await api.call("GET", "/api/users", token=None, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert_error(basic, 401, "admin_unauthorized")
    assert basic.headers["WWW-Authenticate"].startswith("Bearer")

    wrong = await api.call("GET", "/api/users", token="tw-admin-not-a-real-token")
    assert "not valid" in assert_error(wrong, 401, "admin_unauthorized")["message"]
    assert "tw-admin-not-a-real-token" not in wrong.text

    user_service.create_user(engine, "carol")
    api_key = key_service.create_key(engine, "carol")["key"]
    as_key = await api.call("GET", "/api/users", token=api_key)
    err = assert_error(as_key, 401, "admin_unauthorized")
    assert "need an admin token, not an API key" in err["message"]
    assert api_key not in as_key.text
    zh = await api.call("GET", "/api/users", token=api_key, headers={"Accept-Language": "zh-CN"})
    assert "管理令牌" in zh.error["message"]

    assert_ok(await api.call("GET", "/api/users"))
    assert_ok(await api.call("GET", "/api/users", token=EXTRA_TOKEN))


# --- a full cycle per resource -------------------------------------------------------------------


async def test_user_cycle_with_balance_and_ledger(api: Api) -> None:
    created = assert_ok(await api.call("POST", "/api/users", json={"name": "bob", "email": "bob@example.com"}), 201)
    shaped(s.UserOut, created)
    assert (created["name"], created["group"], created["balance_usd"]) == ("bob", "default", "0")

    listed = assert_ok(await api.call("GET", "/api/users"))
    assert [shaped(s.UserOut, u)["name"] for u in listed["data"]] == ["bob"]

    patched = assert_ok(await api.call("PATCH", "/api/users/bob", json={"status": "disabled"}))
    assert (patched["status"], patched["email"]) == ("disabled", "bob@example.com")
    cleared = assert_ok(await api.call("PATCH", "/api/users/bob", json={"email": None}))
    assert (cleared["status"], cleared["email"]) == ("disabled", None)

    topped = assert_ok(await api.call("POST", "/api/users/bob/balance", json={"delta_usd": "5", "note": "t"}), 201)
    assert topped["balance_usd"] == "5"
    # Whole-dollar JSON integers are exact, so they are accepted as well as strings.
    deducted = assert_ok(await api.call("POST", "/api/users/bob/balance", json={"delta_usd": -1}), 201)
    assert (deducted["balance_nano"], deducted["balance_usd"]) == (4_000_000_000, "4")

    ledger = assert_ok(await api.call("GET", "/api/users/bob/ledger"))["data"]
    assert [(e["kind"], e["amount_usd"]) for e in ledger] == [("adjust", "-1"), ("topup", "5")]
    for entry in ledger:
        shaped(s.LedgerEntryOut, entry)
    one = assert_ok(await api.call("GET", "/api/users/bob/ledger?limit=1"))["data"]
    assert len(one) == 1

    fetched = assert_ok(await api.call("GET", "/api/users/bob"))
    assert fetched == deducted
    assert_error(await api.call("GET", "/api/users/nobody"), 404, "not_found")
    assert_error(await api.call("POST", "/api/users", json={"name": "bob"}), 409, "conflict")


async def test_group_cycle(api: Api) -> None:
    body = {"name": "vip", "price_multiplier": "0.85", "allowed_models": ["gpt-4o"], "description": "paying"}
    created = shaped(s.GroupOut, assert_ok(await api.call("POST", "/api/groups", json=body), 201))
    assert (created["price_multiplier"], created["allowed_models"]) == ("0.85", ["gpt-4o"])

    names = [g["name"] for g in assert_ok(await api.call("GET", "/api/groups"))["data"]]
    assert names == sorted(["default", "vip"])

    described = assert_ok(await api.call("PATCH", "/api/groups/vip", json={"description": "gold"}))
    assert (described["description"], described["allowed_models"]) == ("gold", ["gpt-4o"])
    opened = assert_ok(await api.call("PATCH", "/api/groups/vip", json={"allowed_models": None}))
    assert (opened["allowed_models"], opened["price_multiplier"]) == (None, "0.85")

    assert_ok(await api.call("POST", "/api/users", json={"name": "dave", "group": "vip"}), 201)
    assert_error(await api.call("DELETE", "/api/groups/vip"), 409, "conflict")
    assert_ok(await api.call("PATCH", "/api/users/dave", json={"group": "default"}))

    deleted = await api.call("DELETE", "/api/groups/vip")
    assert assert_ok(deleted, 204) is None and deleted.text == ""
    assert_error(await api.call("GET", "/api/groups/vip"), 404, "not_found")


async def test_key_cycle_shows_the_key_once(api: Api, engine: Engine) -> None:
    assert_ok(await api.call("POST", "/api/users", json={"name": "erin"}), 201)
    body = {
        "user": "erin",
        "name": "ci",
        "spend_limit_usd": "2.5",
        "allowed_ips": ["10.0.0.0/8"],
        "environment": "test",
    }
    created = shaped(s.KeyCreatedOut, assert_ok(await api.call("POST", "/api/keys", json=body), 201))
    secret = created["key"]
    assert secret.startswith("sk-") and created["spend_limit_usd"] == "2.5"
    key_id = created["id"]

    listed = await api.call("GET", "/api/keys?user=erin")
    everyone = await api.call("GET", "/api/keys?user=")
    fetched = await api.call("GET", f"/api/keys/{key_id}")
    assert [k["id"] for k in assert_ok(listed)["data"]] == [key_id]
    assert [k["id"] for k in assert_ok(everyone)["data"]] == [key_id]
    shaped(s.KeyOut, assert_ok(fetched))
    for reply in (listed, everyone, fetched):
        assert secret not in reply.text and hash_secret(secret) not in reply.text
        assert '"key"' not in reply.text

    limited = assert_ok(await api.call("PATCH", f"/api/keys/{key_id}", json={"status": "disabled"}))
    assert (limited["status"], limited["spend_limit_usd"]) == ("disabled", "2.5")
    unlimited = shaped(
        s.KeyOut, assert_ok(await api.call("PATCH", f"/api/keys/{key_id}", json={"spend_limit_usd": None}))
    )
    assert (unlimited["spend_limit_usd"], unlimited["status"], unlimited["allowed_ips"]) == (
        None,
        "disabled",
        ["10.0.0.0/8"],
    )
    assert secret not in str(unlimited)

    bad_id = assert_error(await api.call("GET", "/api/keys/abc"), 400, "bad_request")
    assert bad_id["param"] == "key_id"
    assert_ok(await api.call("DELETE", f"/api/keys/{key_id}"), 204)
    assert_error(await api.call("GET", f"/api/keys/{key_id}"), 404, "not_found")
    assert_error(await api.call("DELETE", f"/api/keys/{key_id}"), 404, "not_found")


async def test_channel_credential_is_write_only(api: Api, engine: Engine, credential_box: CredentialBox) -> None:
    secret = "upstream-secret-credential-123"
    body = {
        "name": "openai-main",
        "type": "openai",
        "base_url": "https://api.openai.com/v1",
        "credential": secret,
        "models": ["gpt-4o", "gpt-4o-mini"],
        "model_mapping": {"gpt-4o": "gpt-4o-2024-08-06"},
    }
    created_reply = await api.call("POST", "/api/channels", json=body)
    created = shaped(s.ChannelOut, assert_ok(created_reply, 201))
    assert (created["has_credential"], created["groups"]) == (True, ["default"])

    replies = [
        created_reply,
        await api.call("GET", "/api/channels"),
        await api.call("GET", "/api/channels/openai-main"),
        await api.call("PATCH", "/api/channels/openai-main", json={"weight": 3, "status": "disabled"}),
    ]
    for reply in replies:
        assert_ok(reply, reply.status)
        assert secret not in reply.text and "credential_encrypted" not in reply.text
    assert (replies[3].json["weight"], replies[3].json["status"]) == (3, "disabled")
    assert replies[3].json["has_credential"] is True

    cleared = assert_ok(await api.call("PATCH", "/api/channels/openai-main", json={"credential": None}))
    assert cleared["has_credential"] is False
    rotated = await api.call("PATCH", "/api/channels/openai-main", json={"credential": "rotated-credential-456"})
    assert assert_ok(rotated)["has_credential"] is True and "rotated-credential-456" not in rotated.text
    with engine.connect() as conn:
        stored = conn.execute(select(channels.c.credential_encrypted)).scalar_one()
    assert credential_box.decrypt(stored) == "rotated-credential-456"

    assert_ok(await api.call("DELETE", "/api/channels/openai-main"), 204)
    assert assert_ok(await api.call("GET", "/api/channels")) == {"data": []}
    assert_error(await api.call("GET", "/api/channels/openai-main"), 404, "not_found")


async def test_price_cycle_with_a_slash_in_the_model_name(api: Api) -> None:
    body = {"input_usd_per_mtok": "0.15", "output_usd_per_mtok": "0.6", "per_request_usd": None}
    priced = shaped(s.PriceOut, assert_ok(await api.call("PUT", "/api/prices/meta/llama-3", json=body)))
    assert (priced["model"], priced["input_nano_per_mtok"], priced["output_usd_per_mtok"]) == (
        "meta/llama-3",
        150_000_000,
        "0.6",
    )
    repriced = assert_ok(await api.call("PUT", "/api/prices/meta/llama-3", json={"input_usd_per_mtok": "1"}))
    # PUT replaces the whole price: an omitted field takes its default, it is not kept.
    assert (repriced["input_usd_per_mtok"], repriced["output_usd_per_mtok"]) == ("1", "0")
    assert assert_ok(await api.call("GET", "/api/prices/meta/llama-3")) == repriced
    listed = assert_ok(await api.call("GET", "/api/prices"))["data"]
    assert [p["model"] for p in listed] == ["meta/llama-3"]

    assert_ok(await api.call("DELETE", "/api/prices/meta/llama-3"), 204)
    assert_error(await api.call("GET", "/api/prices/meta/llama-3"), 404, "not_found")


# --- errors --------------------------------------------------------------------------------------


async def test_validation_errors_name_the_field_in_both_languages(sqlite_api: Api) -> None:
    api = sqlite_api
    missing = assert_error(await api.call("POST", "/api/users", json={}), 400, "bad_request")
    assert missing["param"] == "name" and "`name`" in missing["message"] and "required" in missing["message"]
    assert missing["type"] == "invalid_request_error"
    zh = await api.call("POST", "/api/users", json={}, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert assert_error(zh, 400, "bad_request")["message"] == "字段 `name` 是必填项"

    wrong_type = assert_error(await api.call("POST", "/api/users", json={"name": 5}), 400, "bad_request")
    assert wrong_type["message"] == "field `name` must be a string"
    unknown = assert_error(await api.call("POST", "/api/users", json={"name": "x", "balance": "5"}), 400, "bad_request")
    assert (unknown["param"], unknown["message"]) == ("balance", "field `balance` is not a known field")
    choice = assert_error(await api.call("POST", "/api/users", json={"name": "x", "role": "root"}), 400, "bad_request")
    assert "`role` must be one of" in choice["message"] and "'admin'" in choice["message"]

    floaty = await api.call(
        "POST", "/api/users", json={"name": "x", "balance_usd": 1.5}, headers={"Accept-Language": "zh"}
    )
    err = assert_error(floaty, 400, "bad_request")
    assert err["param"] == "balance_usd" and "十进制字符串" in err["message"]

    nulled = assert_error(
        await api.call("PATCH", "/api/groups/default", json={"description": None}), 400, "bad_request"
    )
    assert nulled["param"] == "description" and "must not be null" in nulled["message"]
    two = assert_error(
        await api.call("POST", "/api/channels", json={"name": "c", "type": "demo", "models": "m", "weight": 0}),
        400,
        "bad_request",
    )
    assert "`models` must be a list" in two["message"] and "`weight` must be at least 1" in two["message"]

    bad_json = await api.call("POST", "/api/users", data=b'{"name": "x",')
    assert assert_error(bad_json, 400, "bad_request")["message"] == "request body is not valid JSON"
    listed = await api.call("POST", "/api/users", data=b'["x"]')
    assert assert_error(listed, 400, "bad_request")["message"] == "request body must be a JSON object"

    limit = assert_error(await api.call("GET", "/api/logs?limit=5000"), 400, "bad_request")
    assert (limit["param"], limit["message"]) == ("limit", "query parameter `limit` must be at most 1000")
    status = assert_error(await api.call("GET", "/api/logs?status=bad"), 400, "bad_request")
    assert status["param"] == "status"

    # Rules about values come from the services, bilingual too.
    no_group = await api.call(
        "POST", "/api/users", json={"name": "x", "group": "vip"}, headers={"Accept-Language": "zh"}
    )
    assert "vip" in assert_error(no_group, 404, "not_found")["message"]
    assert re.search(r"[\u4e00-\u9fff]", no_group.error["message"])


async def test_unknown_paths_and_methods_get_json_errors(sqlite_api: Api) -> None:
    for path in ("/api/nope", "/api", "/api/users/bob/nope", "/api/prices/"):
        err = assert_error(await sqlite_api.call("GET", path), 404, "not_found")
        assert "openapi.json" in err["message"]
    method = assert_error(await sqlite_api.call("DELETE", "/api/users"), 405, "method_not_allowed")
    assert "GET" in method["message"] and "POST" in method["message"]


async def test_unexpected_failure_is_generic_and_logged(
    sqlite_api: Api, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # A store that lost a table fails in a way no handler anticipates.
    with sqlite_engine.begin() as conn:
        conn.execute(text("ALTER TABLE model_prices RENAME TO model_prices_gone"))
    with caplog.at_level("ERROR", logger="tollway.admin"):
        reply = await sqlite_api.call("GET", "/api/prices")
    err = assert_error(reply, 500, "internal_error")
    assert "model_prices" not in reply.text and "Traceback" not in reply.text
    assert err["message"].startswith("internal error")
    logged = [r for r in caplog.records if r.name == "tollway.admin"]
    assert logged and err["request_id"] in logged[0].getMessage() and logged[0].exc_info


# --- logs ----------------------------------------------------------------------------------------


def _log_row(request_id: str, *, ago_ms: int, user: str, key_id: int, model: str, status: int) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "created_at_ms": now_ms() - ago_ms,
        "user_id": None,
        "user_name": user,
        "key_id": key_id,
        "key_name": "default",
        "key_masked": "sk-AbCd…a1b2",
        "endpoint": "/v1/chat/completions",
        "inbound_format": "openai",
        "requested_model": model,
        "status_code": status,
        "error_code": None if status < 400 else "upstream_error",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "usage_source": "reported",
        "cost_nano": 1_500_000 if status < 400 else 0,
        "charged": status < 400,
        "latency_ms": 120,
    }


async def test_logs_filtering(api: Api, engine: Engine) -> None:
    minute = 60_000
    rows = [
        _log_row("req-old", ago_ms=3 * 60 * minute, user="alice", key_id=1, model="gpt-4o", status=200),
        _log_row("req-a", ago_ms=30 * minute, user="alice", key_id=1, model="gpt-4o", status=200),
        _log_row("req-b", ago_ms=20 * minute, user="bob", key_id=2, model="gpt-4o-mini", status=502),
        _log_row("req-c", ago_ms=10 * minute, user="alice", key_id=3, model="gpt-4o-mini", status=429),
    ]
    with engine.begin() as conn:
        conn.execute(insert(request_logs), rows)

    async def ids(query: str) -> list[str]:
        return [row["request_id"] for row in assert_ok(await api.call("GET", "/api/logs" + query))["data"]]

    assert await ids("") == ["req-c", "req-b", "req-a", "req-old"]
    assert await ids("?since=1h") == ["req-c", "req-b", "req-a"]
    assert await ids("?until=15m") == ["req-b", "req-a", "req-old"]
    assert await ids("?user=alice&since=2h") == ["req-c", "req-a"]
    assert await ids("?key_id=2") == ["req-b"]
    assert await ids("?model=gpt-4o-mini") == ["req-c", "req-b"]
    assert await ids("?status=error") == ["req-c", "req-b"]
    assert await ids("?status=ok") == ["req-a", "req-old"]
    assert await ids("?status=502") == ["req-b"]
    assert await ids("?request_id=req-a") == ["req-a"]
    assert await ids("?limit=2&offset=1") == ["req-b", "req-a"]

    one = shaped(s.LogOut, assert_ok(await api.call("GET", "/api/logs/req-b")))
    assert (one["status_code"], one["error_code"], one["cost_usd"]) == (502, "upstream_error", "0")
    for row in assert_ok(await api.call("GET", "/api/logs"))["data"]:
        shaped(s.LogOut, row)
    assert_error(await api.call("GET", "/api/logs/req-missing"), 404, "not_found")
    since = assert_error(await api.call("GET", "/api/logs?since=yesterday"), 400, "bad_request")
    assert since["param"] == "since"


async def test_api_errors_win_over_an_app_wide_catch_all_route(
    sqlite_engine: Engine, credential_box: CredentialBox
) -> None:
    # The gateway app registers a "/{tail:.*}" fallback after the admin API; /api/ paths must
    # still get the admin API's own 404 and 405 answers.
    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(status=418, text="fallback")

    app = web.Application()
    setup_admin_api(app, sqlite_engine, credential_box)
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(base, session, "")
            assert_error(await api.call("GET", "/api/nope", token=None), 404, "not_found")
            assert_error(await api.call("DELETE", "/api/users", token=None), 405, "method_not_allowed")
            assert (await api.call("GET", "/elsewhere", token=None)).status == 418
    finally:
        await runner.cleanup()
