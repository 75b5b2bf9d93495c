import orjson
from sqlalchemy import Engine, select

from tests.admin.expect import config_version, gateway_error
from tollway.accounts.credentials import CredentialBox
from tollway.admin import channels, groups, users
from tollway.admin.validation import UNSET
from tollway.pipeline.errors import BAD_REQUEST, CONFLICT, NOT_FOUND
from tollway.store.tables import groups as groups_table


def test_create_get_list_and_each_write_bumps_the_version(engine: Engine) -> None:
    v0 = config_version(engine)
    created = groups.create_group(
        engine, "vip", price_multiplier="0.85", allowed_models=["gpt-4o", "gpt-4o"], description=" VIPs "
    )
    assert config_version(engine) == v0 + 1
    assert created == groups.get_group(engine, "vip")
    assert orjson.loads(orjson.dumps(created)) == created  # the REST API returns it as-is
    assert created["price_multiplier"] == "0.85"
    assert created["price_multiplier_ppm"] == 850_000
    assert created["allowed_models"] == ["gpt-4o"]  # de-duplicated
    assert created["description"] == "VIPs"
    assert created["user_count"] == 0
    assert created["created_at"].endswith("Z") and isinstance(created["created_at_ms"], int)
    assert [g["name"] for g in groups.list_groups(engine)] == ["default", "vip"]

    users.create_user(engine, "bob", group="vip")
    assert groups.get_group(engine, "vip")["user_count"] == 1

    v1 = config_version(engine)
    updated = groups.update_group(engine, "vip", price_multiplier="1.5", description="")
    assert (updated["price_multiplier"], updated["allowed_models"], updated["description"]) == ("1.5", ["gpt-4o"], "")
    assert config_version(engine) == v1 + 1
    assert groups.update_group(engine, "vip", allowed_models=None)["allowed_models"] is None
    assert config_version(engine) == v1 + 2
    # "all models" is stored as SQL NULL, not a JSON null, so `IS NULL` finds it.
    with engine.connect() as conn:
        stored = conn.execute(select(groups_table.c.name).where(groups_table.c.allowed_models.is_(None)))
        assert sorted(stored.scalars()) == ["default", "vip"]
    groups.update_group(engine, "vip", allowed_models=UNSET)  # nothing to change: no bump
    assert config_version(engine) == v1 + 2


def test_create_refuses_duplicates_and_bad_values(sqlite_engine: Engine) -> None:
    groups.create_group(sqlite_engine, "vip")
    with gateway_error(CONFLICT, param="name", match="group `vip` already exists"):
        groups.create_group(sqlite_engine, "vip")
    with gateway_error(BAD_REQUEST, param="name"):
        groups.create_group(sqlite_engine, "  ")
    with gateway_error(BAD_REQUEST, param="name", match="may not contain"):
        groups.create_group(sqlite_engine, "a/b")
    with gateway_error(BAD_REQUEST, param="price_multiplier"):
        groups.create_group(sqlite_engine, "neg", price_multiplier="-1")
    with gateway_error(BAD_REQUEST, param="price_multiplier"):
        groups.create_group(sqlite_engine, "fine", price_multiplier="0.0000001")
    with gateway_error(BAD_REQUEST, param="allowed_models", match="--all-models"):
        groups.create_group(sqlite_engine, "none", allowed_models=[])
    with gateway_error(BAD_REQUEST, param="allowed_models"):
        groups.create_group(sqlite_engine, "spaces", allowed_models=["gpt 4o"])
    with gateway_error(NOT_FOUND, param="name", match="group `nope` does not exist"):
        groups.update_group(sqlite_engine, "nope", description="x")
    assert [g["name"] for g in groups.list_groups(sqlite_engine)] == ["default", "vip"]


def test_delete_rules(engine: Engine, credential_box: CredentialBox) -> None:
    with gateway_error(BAD_REQUEST, param="name", match="`default` group cannot be deleted"):
        groups.delete_group(engine, "default")
    groups.create_group(engine, "vip")
    users.create_user(engine, "bob", group="vip")
    with gateway_error(CONFLICT, param="name", match="still has 1 user"):
        groups.delete_group(engine, "vip")
    users.update_user(engine, "bob", group="default")
    channels.create_channel(engine, credential_box, "up", type="demo", models=["m"], groups=["default", "vip"])
    with gateway_error(CONFLICT, param="name", match="channel(s) up"):
        groups.delete_group(engine, "vip")
    channels.update_channel(engine, credential_box, "up", groups=["default"])

    v0 = config_version(engine)
    groups.delete_group(engine, "vip")
    assert config_version(engine) == v0 + 1
    with gateway_error(NOT_FOUND, param="name"):
        groups.get_group(engine, "vip")
    with gateway_error(NOT_FOUND, param="name"):
        groups.delete_group(engine, "vip")
