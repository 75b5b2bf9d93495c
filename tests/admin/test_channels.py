import orjson
import pytest
from sqlalchemy import Engine, select

from tests.admin.expect import config_version, gateway_error
from tollway.accounts.credentials import CredentialBox
from tollway.admin import channels, groups
from tollway.pipeline.errors import BAD_REQUEST, CONFLICT, NOT_FOUND
from tollway.store.tables import channels as channels_table

SECRET = "sk-upstream-very-secret-1234"


def _stored_credential(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            select(channels_table.c.credential_encrypted).where(channels_table.c.name == name)
        ).scalar_one()


def test_create_encrypts_the_credential_and_never_returns_it(engine: Engine, credential_box: CredentialBox) -> None:
    groups.create_group(engine, "vip")
    v0 = config_version(engine)
    channel = channels.create_channel(
        engine,
        credential_box,
        "openai-main",
        type="openai",
        base_url="https://api.openai.com/v1/",
        credential=f" {SECRET}\n",
        models=["gpt-4o", "gpt-4o-mini"],
        model_mapping={"gpt-4o": "gpt-4o-2024-08-06"},
        groups=["default", "vip"],
        priority=5,
        weight=3,
    )
    assert config_version(engine) == v0 + 1
    assert channel == channels.get_channel(engine, "openai-main")
    assert channels.list_channels(engine) == [channel]
    assert orjson.loads(orjson.dumps(channel)) == channel  # the REST API returns it as-is
    assert channel["base_url"] == "https://api.openai.com/v1"
    assert channel["has_credential"] is True
    assert (channel["models"], channel["model_mapping"], channel["groups"]) == (
        ["gpt-4o", "gpt-4o-mini"],
        {"gpt-4o": "gpt-4o-2024-08-06"},
        ["default", "vip"],
    )
    assert (channel["priority"], channel["weight"], channel["status"], channel["type"]) == (5, 3, "enabled", "openai")
    encrypted = _stored_credential(engine, "openai-main")
    assert encrypted is not None and SECRET not in encrypted
    assert credential_box.decrypt(encrypted) == SECRET  # stripped of the pasted whitespace
    for view in (channel, *channels.list_channels(engine)):
        assert SECRET not in repr(view) and encrypted not in repr(view)


def test_demo_needs_no_url_and_defaults(engine: Engine, credential_box: CredentialBox) -> None:
    demo = channels.create_channel(engine, credential_box, "demo", type="demo", models=["demo-chat"])
    assert (demo["base_url"], demo["has_credential"], demo["groups"], demo["model_mapping"]) == (
        "",
        False,
        ["default"],
        {},
    )
    assert (demo["priority"], demo["weight"]) == (0, 1)


@pytest.mark.parametrize(
    ("overrides", "param", "match"),
    [
        ({"type": "anthropic"}, "type", "openai, demo"),
        ({"base_url": ""}, "base_url", "needs base_url"),
        ({"base_url": "api.openai.com/v1"}, "base_url", "http(s)://host"),
        ({"base_url": "ftp://host/v1"}, "base_url", "http(s)://host"),
        ({"base_url": "http://host:99999/v1"}, "base_url", "http(s)://host"),
        ({"base_url": "https://host/v1?key=abc"}, "base_url", "must not carry a query"),
        ({"base_url": "https://host/v1/chat/completions"}, "base_url", "use `https://host/v1`"),
        ({"models": []}, "models", "at least one model"),
        ({"model_mapping": {"claude": "x"}}, "model_mapping", "`claude`, which is not in this channel's models"),
        ({"groups": ["gold"]}, "groups", "group `gold` does not exist"),
        ({"groups": []}, "groups", "at least one group"),
        ({"weight": 0}, "weight", "1 or more"),
        ({"status": "paused"}, "status", "enabled, disabled"),
        ({"credential": "  "}, "credential", "--no-key"),
    ],
)
def test_create_validation(
    sqlite_engine: Engine, credential_box: CredentialBox, overrides: dict, param: str, match: str
) -> None:
    args = {"type": "openai", "base_url": "https://host/v1", "models": ["gpt-4o"], **overrides}
    kind = NOT_FOUND if param == "groups" and overrides["groups"] else BAD_REQUEST
    with gateway_error(kind, param=param, match=match):
        channels.create_channel(sqlite_engine, credential_box, "c", **args)
    assert channels.list_channels(sqlite_engine) == []


def test_duplicate_name(sqlite_engine: Engine, credential_box: CredentialBox) -> None:
    channels.create_channel(sqlite_engine, credential_box, "c", type="demo", models=["m"])
    with gateway_error(CONFLICT, param="name", match="channel `c` already exists"):
        channels.create_channel(sqlite_engine, credential_box, "c", type="demo", models=["m"])


def test_update(engine: Engine, credential_box: CredentialBox) -> None:
    channels.create_channel(
        engine,
        credential_box,
        "c",
        type="openai",
        base_url="http://127.0.0.1:8000/v1",
        models=["a", "b"],
        model_mapping={"a": "upstream-a"},
    )
    v0 = config_version(engine)
    channel = channels.update_channel(
        engine, credential_box, "c", credential="new-secret", priority=-1, status="disabled"
    )
    assert (channel["has_credential"], channel["priority"], channel["status"]) == (True, -1, "disabled")
    assert credential_box.decrypt(_stored_credential(engine, "c") or "") == "new-secret"
    assert config_version(engine) == v0 + 1

    # The mapping must still fit the new model list.
    with gateway_error(BAD_REQUEST, param="model_mapping", match="`a`"):
        channels.update_channel(engine, credential_box, "c", models=["b"])
    channel = channels.update_channel(engine, credential_box, "c", models=["b"], model_mapping={})
    assert (channel["models"], channel["model_mapping"]) == (["b"], {})
    with gateway_error(BAD_REQUEST, param="base_url"):
        channels.update_channel(engine, credential_box, "c", base_url="nope")
    channel = channels.update_channel(engine, credential_box, "c", base_url="https://other.example/api/v3/", weight=2)
    assert (channel["base_url"], channel["weight"]) == ("https://other.example/api/v3", 2)

    channel = channels.update_channel(engine, credential_box, "c", credential=None)
    assert channel["has_credential"] is False and _stored_credential(engine, "c") is None
    with gateway_error(NOT_FOUND, param="groups"):
        channels.update_channel(engine, credential_box, "c", groups=["gold"])
    with gateway_error(NOT_FOUND, param="name", match="channel `d` does not exist"):
        channels.update_channel(engine, credential_box, "d", weight=1)
    assert config_version(engine) == v0 + 4


def test_delete(engine: Engine, credential_box: CredentialBox) -> None:
    channels.create_channel(engine, credential_box, "c", type="demo", models=["m"])
    v0 = config_version(engine)
    channels.delete_channel(engine, "c")
    assert config_version(engine) == v0 + 1
    assert channels.list_channels(engine) == []
    with gateway_error(NOT_FOUND, param="name"):
        channels.delete_channel(engine, "c")
