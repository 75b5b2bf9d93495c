from pathlib import Path

import orjson
from sqlalchemy import select

from tests.cli.conftest import Invoke
from tollway.accounts.credentials import CredentialBox
from tollway.store.db import make_engine, sqlite_url_for
from tollway.store.tables import channels

SECRET = "sk-upstream-cli-secret-9876"


def _stored_credential(data_dir: Path) -> str | None:
    engine = make_engine(sqlite_url_for(data_dir))
    try:
        with engine.connect() as conn:
            return conn.execute(select(channels.c.credential_encrypted)).scalar_one()
    finally:
        engine.dispose()


def test_channel_lifecycle(tollway: Invoke, data_dir: Path) -> None:
    added = tollway(
        "channels", "add", "main", "--type", "openai", "--base-url", "https://api.openai.com/v1/",
        "--key-env", "UPSTREAM_KEY", "--models", "gpt-4o,gpt-4o-mini",
        "--map", "gpt-4o=gpt-4o-2024-08-06", "--map", "gpt-4o-mini=gpt-4o-mini-2024-07-18",
        "--priority", "5", "--weight", "2",
        env={"UPSTREAM_KEY": SECRET},
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert SECRET not in added.stdout and "note:" not in added.stdout
    box = CredentialBox((data_dir / "secret.key").read_text().strip())
    assert box.decrypt(_stored_credential(data_dir) or "") == SECRET

    shown = tollway("channels", "show", "main", "--json")
    channel = orjson.loads(shown.stdout)
    assert SECRET not in shown.stdout
    assert channel["has_credential"] is True and channel["base_url"] == "https://api.openai.com/v1"
    assert channel["model_mapping"] == {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
    assert (channel["groups"], channel["priority"], channel["weight"]) == (["default"], 5, 2)

    narrowed = tollway("channels", "set", "main", "--models", "gpt-4o-mini")
    assert narrowed.exit_code == 1 and "`gpt-4o`, which is not in this channel's models" in narrowed.stderr
    cleared = tollway("channels", "set", "main", "--models", "gpt-4o-mini", "--clear-map", "--no-key")
    assert cleared.exit_code == 0, cleared.output
    channel = orjson.loads(tollway("channels", "show", "main", "--json").stdout)
    assert (channel["models"], channel["model_mapping"], channel["has_credential"]) == (["gpt-4o-mini"], {}, False)
    assert _stored_credential(data_dir) is None

    assert tollway("channels", "disable", "main").exit_code == 0
    assert orjson.loads(tollway("channels", "list", "--json").stdout)[0]["status"] == "disabled"
    assert tollway("channels", "enable", "main").exit_code == 0
    assert "enabled" in tollway("channels", "list").stdout
    assert tollway("channels", "remove", "main").exit_code == 0
    assert orjson.loads(tollway("channels", "list", "--json").stdout) == []


def test_channel_input_errors(tollway: Invoke) -> None:
    no_env = tollway("channels", "add", "c", "--type", "openai", "--base-url", "http://h/v1", "--models", "m",
                     "--key-env", "TOLLWAY_TEST_UNSET_VAR")  # fmt: skip
    assert no_env.exit_code == 1 and "TOLLWAY_TEST_UNSET_VAR is not set" in no_env.stderr
    bad_map = tollway("channels", "add", "c", "--type", "demo", "--models", "m", "--map", "m")
    assert bad_map.exit_code == 1 and "requested=upstream" in bad_map.stderr
    bad_type = tollway("channels", "add", "c", "--type", "claude", "--models", "m")
    assert bad_type.exit_code == 1 and "openai, demo" in bad_type.stderr
    assert tollway("channels", "add", "c", "--type", "demo").exit_code == 2  # --models is required
    rooted = tollway(
        "channels", "add", "c", "--type", "openai", "--base-url", "http://127.0.0.1:11434", "--models", "m"
    )
    assert rooted.exit_code == 0 and "expect one ending in `/v1`" in rooted.stdout
    assert tollway("channels", "show", "nope").exit_code == 1
