from __future__ import annotations

import ipaddress
import logging

import pytest
from sqlalchemy import Engine, update

from tollway.accounts.credentials import CredentialBox
from tollway.accounts.keys import hash_secret
from tollway.admin import channels, groups, keys, prices, users
from tollway.snapshot.builder import build_snapshot
from tollway.store.db import read_config_version
from tollway.store.tables import channels as channels_table

UPSTREAM_KEY = "sk-upstream-abcdef0123456789"


def populate(engine: Engine, box: CredentialBox) -> dict[str, str]:
    groups.create_group(engine, "vip", price_multiplier="0.85", allowed_models=["gpt-4o", "gpt-4o-mini"])
    prices.set_price(
        engine, "gpt-4o", input_usd_per_mtok="2.5", output_usd_per_mtok="10", cached_input_usd_per_mtok="1.25"
    )
    prices.set_price(engine, "gpt-4o-mini", input_usd_per_mtok="0.15", output_usd_per_mtok="0.6")
    prices.set_price(engine, "dall-e-3", per_request_usd="0.04")
    channels.create_channel(
        engine,
        box,
        "backup",
        type="openai",
        base_url="http://127.0.0.1:9002/v1/",
        credential=UPSTREAM_KEY,
        models=["gpt-4o", "gpt-4o-mini"],
        groups=["default", "vip"],
        priority=1,
        weight=2,
    )
    channels.create_channel(
        engine,
        box,
        "primary",
        type="openai",
        base_url="http://127.0.0.1:9001/v1",
        credential=UPSTREAM_KEY + "-p",
        models=["gpt-4o", "fast"],
        model_mapping={"fast": "gpt-4o-mini"},
        groups=["default"],
        priority=10,
        weight=3,
    )
    channels.create_channel(
        engine,
        box,
        "off",
        type="openai",
        base_url="http://127.0.0.1:9003/v1",
        models=["gpt-4o", "old-model"],
        groups=["default", "vip"],
        priority=100,
        status="disabled",
    )
    channels.create_channel(engine, box, "local", type="demo", models=["demo-chat"], groups=["vip"], priority=5)
    users.create_user(engine, "alice", balance_usd="5")
    users.create_user(engine, "bob", group="vip")
    alice = keys.create_key(
        engine,
        "alice",
        name="laptop",
        allowed_models=["gpt-4o"],
        allowed_ips=["10.0.0.0/8", "2001:db8::1"],
        expires_at="30d",
        spend_limit_usd="2.5",
        environment="test",
        project="web",
    )
    bob = keys.create_key(engine, "bob")
    return {"alice": alice["key"], "bob": bob["key"]}


def test_empty_store(engine: Engine, credential_box: CredentialBox) -> None:
    snapshot = build_snapshot(engine, credential_box)
    assert snapshot.keys_by_hash == {} and snapshot.prices == {} and snapshot.channels == ()
    assert snapshot.routes == {} and snapshot.served_models == frozenset()


def test_routes_by_group_and_model_in_priority_order(engine: Engine, credential_box: CredentialBox) -> None:
    populate(engine, credential_box)
    snapshot = build_snapshot(engine, credential_box)

    def names(group: str, model: str) -> list[str]:
        return [c.name for c in snapshot.routes.get((group, model), ())]

    assert names("default", "gpt-4o") == ["primary", "backup"]
    assert names("vip", "gpt-4o") == ["backup"]
    assert names("default", "gpt-4o-mini") == ["backup"]
    assert names("default", "fast") == ["primary"]
    assert names("vip", "fast") == []
    assert names("vip", "demo-chat") == ["local"]
    assert names("default", "demo-chat") == []
    assert set(snapshot.routes) == {
        ("default", "gpt-4o"),
        ("vip", "gpt-4o"),
        ("default", "gpt-4o-mini"),
        ("vip", "gpt-4o-mini"),
        ("default", "fast"),
        ("vip", "demo-chat"),
    }


def test_disabled_channels_are_left_out_everywhere(engine: Engine, credential_box: CredentialBox) -> None:
    populate(engine, credential_box)
    snapshot = build_snapshot(engine, credential_box)
    assert "off" not in {c.name for c in snapshot.channels}
    assert "old-model" not in snapshot.served_models
    assert snapshot.served_models == frozenset({"gpt-4o", "gpt-4o-mini", "fast", "demo-chat"})
    channels.update_channel(engine, credential_box, "off", status="enabled")
    enabled = build_snapshot(engine, credential_box)
    assert [c.name for c in enabled.routes[("default", "gpt-4o")]] == ["off", "primary", "backup"]
    assert "old-model" in enabled.served_models


def test_channel_views(engine: Engine, credential_box: CredentialBox) -> None:
    populate(engine, credential_box)
    snapshot = build_snapshot(engine, credential_box)
    by_name = {c.name: c for c in snapshot.channels}
    backup, primary, local = by_name["backup"], by_name["primary"], by_name["local"]
    assert backup.credential == UPSTREAM_KEY  # decrypted
    assert primary.credential == UPSTREAM_KEY + "-p"
    assert local.credential is None
    assert backup.base_url == "http://127.0.0.1:9002/v1"  # no trailing slash
    assert (backup.priority, backup.weight, primary.priority, primary.weight) == (1, 2, 10, 3)
    assert primary.models == frozenset({"gpt-4o", "fast"})
    assert primary.upstream_model("fast") == "gpt-4o-mini"
    assert primary.upstream_model("gpt-4o") == "gpt-4o"
    assert backup.groups == frozenset({"default", "vip"})
    assert local.type == "demo"


def test_credential_the_secret_key_cannot_open_is_dropped_and_logged(
    engine: Engine, credential_box: CredentialBox, caplog: pytest.LogCaptureFixture
) -> None:
    populate(engine, credential_box)
    with caplog.at_level(logging.ERROR, logger="tollway.snapshot"):
        snapshot = build_snapshot(engine, CredentialBox("a-different-secret-key"))
    by_name = {c.name: c for c in snapshot.channels}
    assert by_name["primary"].credential is None and by_name["backup"].credential is None
    assert len(snapshot.channels) == 3  # the other channels keep serving
    assert "primary" in caplog.text and "cannot be decrypted" in caplog.text
    assert UPSTREAM_KEY not in caplog.text


def test_keys_users_and_groups(engine: Engine, credential_box: CredentialBox) -> None:
    secrets = populate(engine, credential_box)
    snapshot = build_snapshot(engine, credential_box)
    assert set(snapshot.keys_by_hash) == {hash_secret(secrets["alice"]), hash_secret(secrets["bob"])}
    alice = snapshot.keys_by_hash[hash_secret(secrets["alice"])]
    assert alice.name == "laptop"
    assert alice.masked == f"{secrets['alice'][:7]}…{secrets['alice'][-4:]}"
    assert alice.status == "active"
    assert alice.allowed_models == frozenset({"gpt-4o"})
    assert alice.allowed_networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::1/128"))
    assert alice.expires_at_ms is not None and alice.spend_limit_nano == 2_500_000_000
    assert (alice.environment, alice.project) == ("test", "web")
    assert alice.user.name == "alice" and alice.user.status == "active" and alice.user.role == "user"
    assert alice.user.group.name == "default"
    assert alice.user.group.allowed_models is None
    assert alice.user.group.price_multiplier_ppm == 1_000_000

    bob = snapshot.keys_by_hash[hash_secret(secrets["bob"])]
    assert bob.allowed_models is None and bob.allowed_networks is None and bob.expires_at_ms is None
    assert bob.spend_limit_nano is None
    assert bob.user.group.name == "vip"
    assert bob.user.group.price_multiplier_ppm == 850_000
    assert bob.user.group.allowed_models == frozenset({"gpt-4o", "gpt-4o-mini"})


def test_no_secret_material_in_views(engine: Engine, credential_box: CredentialBox) -> None:
    secrets = populate(engine, credential_box)
    snapshot = build_snapshot(engine, credential_box)
    for key_view in snapshot.keys_by_hash.values():
        assert secrets["alice"] not in repr(key_view) and secrets["bob"] not in repr(key_view)


def test_disabled_key_and_user_are_in_the_snapshot_with_their_status(
    engine: Engine, credential_box: CredentialBox
) -> None:
    # authenticate() must be able to say "disabled" rather than "not valid".
    secrets = populate(engine, credential_box)
    bob_id = build_snapshot(engine, credential_box).keys_by_hash[hash_secret(secrets["bob"])].id
    keys.update_key(engine, bob_id, status="disabled")
    users.update_user(engine, "alice", status="disabled")
    snapshot = build_snapshot(engine, credential_box)
    assert snapshot.keys_by_hash[hash_secret(secrets["bob"])].status == "disabled"
    assert snapshot.keys_by_hash[hash_secret(secrets["alice"])].user.status == "disabled"


def test_prices(engine: Engine, credential_box: CredentialBox) -> None:
    populate(engine, credential_box)
    snapshot = build_snapshot(engine, credential_box)
    assert set(snapshot.prices) == {"gpt-4o", "gpt-4o-mini", "dall-e-3"}
    gpt = snapshot.prices["gpt-4o"]
    assert (
        gpt.input_nano_per_mtok,
        gpt.output_nano_per_mtok,
        gpt.cached_input_nano_per_mtok,
        gpt.per_request_nano,
    ) == (
        2_500_000_000,
        10_000_000_000,
        1_250_000_000,
        None,
    )
    assert snapshot.prices["gpt-4o-mini"].cached_input_nano_per_mtok is None
    assert snapshot.prices["dall-e-3"].per_request_nano == 40_000_000


def test_config_version(engine: Engine, credential_box: CredentialBox) -> None:
    with engine.connect() as conn:
        before = read_config_version(conn)
    assert build_snapshot(engine, credential_box).version == before
    prices.set_price(engine, "m", input_usd_per_mtok="1")
    after = build_snapshot(engine, credential_box)
    assert after.version == before + 1
    assert "m" in after.prices
    populate(engine, credential_box)
    with engine.connect() as conn:
        assert build_snapshot(engine, credential_box).version == read_config_version(conn) > after.version


def test_channel_weight_and_priority_changes_show_up(engine: Engine, credential_box: CredentialBox) -> None:
    populate(engine, credential_box)
    channels.update_channel(engine, credential_box, "backup", priority=50)
    snapshot = build_snapshot(engine, credential_box)
    assert [c.name for c in snapshot.routes[("default", "gpt-4o")]] == ["backup", "primary"]


def test_a_raw_disable_without_version_bump_still_rebuilds_correctly(
    engine: Engine, credential_box: CredentialBox
) -> None:
    # The builder reads the rows themselves, not a cache keyed by version.
    populate(engine, credential_box)
    with engine.begin() as conn:
        conn.execute(update(channels_table).where(channels_table.c.name == "primary").values(status="disabled"))
    snapshot = build_snapshot(engine, credential_box)
    assert [c.name for c in snapshot.routes[("default", "gpt-4o")]] == ["backup"]
    assert ("default", "fast") not in snapshot.routes
