from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tollway.config import ConfigError, Settings, ensure_data_dir, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever TOLLWAY_* the machine has set must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("TOLLWAY_"):
            monkeypatch.delenv(name)


def write_toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tollway.toml"
    path.write_text(text)
    return str(path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings == Settings()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8080, 1)
    assert settings.journal_fsync is False
    assert settings.default_max_output_tokens == 1024


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_toml(tmp_path, 'port = 1111\nhost = "0.0.0.0"\nworkers = 3\nlog_level = "debug"\n')
    from_file = load_settings(config_file=config)
    assert (from_file.port, from_file.host, from_file.workers, from_file.log_level) == (1111, "0.0.0.0", 3, "debug")

    monkeypatch.setenv("TOLLWAY_PORT", "2222")
    monkeypatch.setenv("TOLLWAY_WORKERS", "4")
    from_env = load_settings(config_file=config)
    assert (from_env.port, from_env.host, from_env.workers, from_env.log_level) == (2222, "0.0.0.0", 4, "debug")

    from_flags = load_settings({"port": 3333, "host": None}, config_file=config)
    assert (from_flags.port, from_flags.host, from_flags.workers) == (3333, "0.0.0.0", 4)
    # Untouched settings keep their defaults throughout.
    assert from_flags.lease_ttl_s == Settings().lease_ttl_s


def test_none_flags_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_HOST", "::1")
    assert load_settings({"host": None, "port": None}).host == "::1"


def test_empty_env_var_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_PORT", "")
    assert load_settings().port == 8080


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_CONFIG", write_toml(tmp_path, "port = 4444\n"))
    assert load_settings().port == 4444


def test_explicit_config_file_wins_over_env_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.toml"
    other.write_text("port = 5555\n")
    monkeypatch.setenv("TOLLWAY_CONFIG", write_toml(tmp_path, "port = 4444\n"))
    assert load_settings(config_file=str(other)).port == 5555


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("journal_fsync", "true", True),
        ("journal_fsync", "YES", True),
        ("journal_fsync", "on", True),
        ("journal_fsync", "1", True),
        ("journal_fsync", "false", False),
        ("journal_fsync", "Off", False),
        ("journal_fsync", "0", False),
        ("upstream_read_timeout_s", "12.5", 12.5),
        ("lease_ttl_s", "30", 30.0),
        ("port", " 9000 ", 9000),
        ("database_url", "postgresql://u@127.0.0.1/db", "postgresql://u@127.0.0.1/db"),
    ],
)
def test_env_values_are_coerced(name: str, text: str, value: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_" + name.upper(), text)
    assert getattr(load_settings(), name) == value


def test_toml_types_are_used_as_given(tmp_path: Path) -> None:
    config = write_toml(tmp_path, "journal_fsync = true\nupstream_connect_timeout_s = 3\ntrust_forwarded_for = false\n")
    settings = load_settings(config_file=config)
    assert settings.journal_fsync is True
    assert settings.upstream_connect_timeout_s == 3.0 and isinstance(settings.upstream_connect_timeout_s, float)
    assert settings.trust_forwarded_for is False


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("port", "eighty", "int"),
        ("port", "80.5", "int"),
        ("journal_fsync", "maybe", "bool"),
        ("lease_ttl_s", "soon", "float"),
    ],
)
def test_bad_env_values_name_the_setting(name: str, text: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_" + name.upper(), text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert f"`{name}`" in str(info.value)
    assert kind in str(info.value)
    assert text in str(info.value)


def test_bad_flag_value_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="`port`"):
        load_settings({"port": "x"})


def test_bad_toml_value_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`journal_fsync` expects a bool"):
        load_settings(config_file=write_toml(tmp_path, 'journal_fsync = "sometimes"\n'))


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_workers_must_be_positive(workers: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_WORKERS", workers)
    with pytest.raises(ConfigError, match="workers"):
        load_settings()


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    config = write_toml(tmp_path, "port = 1\nprot = 2\n")
    with pytest.raises(ConfigError, match="unknown setting `prot`") as info:
        load_settings(config_file=config)
    assert "tollway.toml" in str(info.value)


def test_toml_table_is_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting `server`"):
        load_settings(config_file=write_toml(tmp_path, "[server]\nport = 1\n"))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=str(tmp_path / "nope.toml"))


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tollway\.toml"):
        load_settings(config_file=write_toml(tmp_path, "port = \n"))


@pytest.mark.parametrize("text", ["port = true\n", "workers = 2.9\n"])
def test_toml_bool_or_float_for_an_int_setting_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(config_file=write_toml(tmp_path, text))


def test_effective_database_url(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path / "data")})
    assert settings.effective_database_url == f"sqlite:///{(tmp_path / 'data' / 'tollway.db').resolve()}"
    explicit = load_settings({"data_dir": str(tmp_path), "database_url": "postgresql://x@127.0.0.1/y"})
    assert explicit.effective_database_url == "postgresql://x@127.0.0.1/y"


def test_data_dir_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings({"data_dir": "~/tw"}).data_path == tmp_path / "tw"


def test_secret_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    first = ensure_data_dir(load_settings({"data_dir": str(data)}))
    key_file = data / "secret.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.secret_key == key_file.read_text().strip()
    assert len(first.secret_key) >= 40
    second = ensure_data_dir(load_settings({"data_dir": str(data)}))
    assert second.secret_key == first.secret_key
    other = ensure_data_dir(load_settings({"data_dir": str(tmp_path / "elsewhere")}))
    assert other.secret_key != first.secret_key


def test_existing_secret_key_file_is_read_as_is(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("  my-own-secret\n")
    assert ensure_data_dir(load_settings({"data_dir": str(tmp_path)})).secret_key == "my-own-secret"


def test_configured_secret_key_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_SECRET_KEY", "from-env")
    settings = ensure_data_dir(load_settings({"data_dir": str(tmp_path / "d")}))
    assert settings.secret_key == "from-env"
    assert (tmp_path / "d").is_dir()
    assert not (tmp_path / "d" / "secret.key").exists()


def test_secrets_stay_out_of_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the bad value is echoed, never another setting's value.
    monkeypatch.setenv("TOLLWAY_ADMIN_TOKEN", "tw-admin-supersecret")
    monkeypatch.setenv("TOLLWAY_PORT", "nope")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "supersecret" not in str(info.value)
