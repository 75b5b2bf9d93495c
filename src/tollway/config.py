"""Settings from flags, environment (TOLLWAY_*) and an optional TOML file, in that order of
precedence, over built-in defaults. docs/configuration.md lists every setting."""

from __future__ import annotations

import os
import secrets
import time
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tollway.store.db import sqlite_url_for

ENV_PREFIX = "TOLLWAY_"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "./tollway-data"
    database_url: str = ""  # empty: SQLite file in data_dir
    workers: int = 1
    secret_key: str = ""  # empty: generated once into data_dir/secret.key
    admin_token: str = ""  # optional extra admin token accepted besides stored ones
    upstream_connect_timeout_s: float = 10.0
    upstream_read_timeout_s: float = 300.0  # longest silence allowed between upstream bytes
    default_max_output_tokens: int = 1024  # reservation estimate when a request sets no max_tokens
    config_poll_interval_s: float = 0.5
    log_flush_interval_s: float = 0.2  # journal makes answers durable at once; the DB catches up in batches
    journal_fsync: bool = False  # True: survive power loss too, at a cost per request
    lease_ttl_s: float = 60.0
    trust_forwarded_for: bool = False  # use X-Forwarded-For for the client IP (behind a proxy)
    log_level: str = "info"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or sqlite_url_for(self.data_path)


_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _coerce(name: str, value: Any) -> Any:
    kind = _FIELD_TYPES[name]
    # TOML values arrive typed: refuse `port = true` or `workers = 2.9` instead of truncating.
    if (isinstance(value, bool) and kind != "bool") or (isinstance(value, float) and kind == "int"):
        raise ConfigError(f"setting `{name}` expects a {kind}, got `{value}`")
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except ValueError as exc:
        raise ConfigError(f"setting `{name}` expects a {kind}, got `{value}`") from exc


def load_settings(flags: dict[str, Any] | None = None, config_file: str | None = None) -> Settings:
    """Merge defaults < TOML file < environment < flags. Flags that are None count as unset."""
    values: dict[str, Any] = {}
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if path:
        file_path = Path(path).expanduser()
        if not file_path.is_file():
            raise ConfigError(f"config file `{file_path}` does not exist")
        try:
            with file_path.open("rb") as handle:
                data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file_path} is not valid TOML: {exc}") from exc
        for name, value in data.items():
            if name not in _FIELD_TYPES:
                raise ConfigError(f"unknown setting `{name}` in {file_path}")
            values[name] = _coerce(name, value)
    for name in _FIELD_TYPES:
        env_value = os.environ.get(ENV_PREFIX + name.upper())
        if env_value is not None and env_value != "":
            values[name] = _coerce(name, env_value)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
    settings = Settings(**values)
    if settings.workers < 1:
        raise ConfigError("workers must be at least 1")
    if not 0 < settings.port < 65536:
        raise ConfigError(f"port must be between 1 and 65535, got {settings.port}")
    if settings.default_max_output_tokens < 1:
        raise ConfigError("default_max_output_tokens must be at least 1")
    if settings.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got `{settings.log_level}`")
    for name in (
        "upstream_connect_timeout_s",
        "upstream_read_timeout_s",
        "config_poll_interval_s",
        "log_flush_interval_s",
        "lease_ttl_s",
    ):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be greater than zero")
    return settings


def ensure_data_dir(settings: Settings) -> Settings:
    """Create the data directory and, if no secret key was configured, load or create the one
    kept there (0600). Returns settings with the secret key filled in."""
    data = settings.data_path
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    if settings.secret_key:
        return settings
    key_file = data / "secret.key"
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # made by an earlier run, or by a command starting at the same moment
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    for _ in range(100):  # a racing creator may not have written it yet
        secret = key_file.read_text().strip()
        if secret:
            return replace(settings, secret_key=secret)
        time.sleep(0.02)
    raise ConfigError(
        f"{key_file} is empty: restore it from a backup, or set secret_key (channel credentials "
        "saved with the old key must then be entered again)"
    )
