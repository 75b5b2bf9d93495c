import orjson
from sqlalchemy import Engine, select

from tests.admin.expect import config_version, gateway_error
from tollway.accounts.keys import hash_secret
from tollway.admin import keys, users
from tollway.admin.validation import iso_to_ms
from tollway.pipeline.errors import BAD_REQUEST, NOT_FOUND
from tollway.store.db import now_ms
from tollway.store.tables import api_keys

DAY_MS = 86_400_000


def test_the_key_is_returned_once_and_only_its_hash_is_stored(engine: Engine) -> None:
    users.create_user(engine, "bob")
    v0 = config_version(engine)
    created = keys.create_key(engine, "bob")
    assert config_version(engine) == v0 + 1
    secret = created.pop("key")
    assert secret.startswith("sk-") and len(secret) > 40
    assert created["masked"] == f"{secret[:7]}…{secret[-4:]}"
    assert created == keys.get_key(engine, created["id"])
    assert orjson.loads(orjson.dumps(created)) == created  # the REST API returns it as-is
    assert keys.list_keys(engine) == [created] == keys.list_keys(engine, user="bob")
    with engine.connect() as conn:
        stored = conn.execute(select(api_keys)).mappings().one()
    assert stored["key_hash"] == hash_secret(secret)
    assert secret not in {str(v) for v in stored.values()}
    # Neither the key nor its hash leaks through any read or update.
    for view in (keys.get_key(engine, created["id"]), *keys.list_keys(engine), keys.update_key(engine, created["id"])):
        text = repr(view)
        assert "key" not in view and secret not in text and stored["key_hash"] not in text
    assert (created["name"], created["user"], created["status"], created["environment"]) == (
        "default",
        "bob",
        "active",
        "prod",
    )
    assert created["spend_limit_usd"] is None and created["expires_at"] is None
    assert (created["spent_nano"], created["spent_usd"]) == (0, "0")


def test_create_with_every_option(engine: Engine) -> None:
    users.create_user(engine, "bob")
    before = now_ms()
    key = keys.create_key(
        engine,
        "bob",
        name="ci",
        spend_limit_usd="2.5",
        expires_at="30d",
        allowed_models=["gpt-4o"],
        allowed_ips=["10.0.0.0/8", "1.2.3.4", "2001:db8::1/64"],
        environment="test",
        project="search",
    )
    assert (key["spend_limit_nano"], key["spend_limit_usd"]) == (2_500_000_000, "2.5")
    assert before + 30 * DAY_MS <= key["expires_at_ms"] <= now_ms() + 30 * DAY_MS
    assert key["allowed_models"] == ["gpt-4o"]
    assert key["allowed_ips"] == ["10.0.0.0/8", "1.2.3.4/32", "2001:db8::/64"]
    assert (key["environment"], key["project"], key["name"]) == ("test", "search", "ci")
    dated = keys.create_key(engine, "bob", expires_at="2099-01-01")
    assert dated["expires_at"] == "2099-01-01T00:00:00Z"
    assert dated["expires_at_ms"] == iso_to_ms("2099-01-01T00:00:00Z")


def test_create_validation(sqlite_engine: Engine) -> None:
    users.create_user(sqlite_engine, "bob")
    with gateway_error(NOT_FOUND, param="user", match="user `eve` does not exist"):
        keys.create_key(sqlite_engine, "eve")
    with gateway_error(BAD_REQUEST, param="allowed_ips", match="`10.0.0.300`"):
        keys.create_key(sqlite_engine, "bob", allowed_ips=["10.0.0.1", "10.0.0.300"])
    with gateway_error(BAD_REQUEST, param="allowed_ips", match="--any-ip"):
        keys.create_key(sqlite_engine, "bob", allowed_ips=[])
    with gateway_error(BAD_REQUEST, param="expires_at", match="already in the past"):
        keys.create_key(sqlite_engine, "bob", expires_at="2001-01-01")
    with gateway_error(BAD_REQUEST, param="expires_at", match="not a time"):
        keys.create_key(sqlite_engine, "bob", expires_at="next tuesday")
    with gateway_error(BAD_REQUEST, param="environment", match="test, prod"):
        keys.create_key(sqlite_engine, "bob", environment="staging")
    with gateway_error(BAD_REQUEST, param="spend_limit_usd"):
        keys.create_key(sqlite_engine, "bob", spend_limit_usd="-5")
    with gateway_error(BAD_REQUEST, param="name"):
        keys.create_key(sqlite_engine, "bob", name=" ")
    with gateway_error(BAD_REQUEST, param="allowed_models"):
        keys.create_key(sqlite_engine, "bob", allowed_models=[])
    with gateway_error(NOT_FOUND, param="user"):
        keys.list_keys(sqlite_engine, user="eve")
    assert keys.list_keys(sqlite_engine) == []


def test_update_sets_clears_and_leaves_fields(engine: Engine) -> None:
    users.create_user(engine, "bob")
    key_id = keys.create_key(
        engine, "bob", spend_limit_usd="1", expires_at="1d", allowed_models=["m"], allowed_ips=["::1"], project="p"
    )["id"]
    v0 = config_version(engine)
    key = keys.update_key(engine, key_id, name="renamed", status="disabled", environment="test")
    assert (key["name"], key["status"], key["environment"]) == ("renamed", "disabled", "test")
    assert (key["spend_limit_usd"], key["allowed_models"], key["allowed_ips"], key["project"]) == (
        "1",
        ["m"],
        ["::1/128"],
        "p",
    )
    assert key["expires_at_ms"] is not None
    assert config_version(engine) == v0 + 1

    key = keys.update_key(
        engine, key_id, spend_limit_usd=None, expires_at=None, allowed_models=None, allowed_ips=None, project=None
    )
    assert [key[f] for f in ("spend_limit_nano", "expires_at_ms", "allowed_models", "allowed_ips", "project")] == [
        None
    ] * 5
    key = keys.update_key(engine, key_id, spend_limit_usd="0.75", allowed_ips=["192.168.0.0/16"])
    assert (key["spend_limit_usd"], key["allowed_ips"]) == ("0.75", ["192.168.0.0/16"])
    assert config_version(engine) == v0 + 3

    with gateway_error(BAD_REQUEST, param="status", match="active, disabled"):
        keys.update_key(engine, key_id, status="paused")
    with gateway_error(NOT_FOUND, param="key_id", match="key 999 does not exist"):
        keys.update_key(engine, 999, status="active")


def test_delete(engine: Engine) -> None:
    users.create_user(engine, "bob")
    key_id = keys.create_key(engine, "bob")["id"]
    v0 = config_version(engine)
    keys.delete_key(engine, key_id)
    assert config_version(engine) == v0 + 1
    assert keys.list_keys(engine) == []
    with gateway_error(NOT_FOUND, param="key_id"):
        keys.get_key(engine, key_id)
    with gateway_error(NOT_FOUND, param="key_id"):
        keys.delete_key(engine, key_id)
