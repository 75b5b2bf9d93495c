"""What every CLI command shares: reading settings and opening the store they point at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from sqlalchemy import Engine

from tollway.accounts.credentials import CredentialBox
from tollway.config import ConfigError, Settings, ensure_data_dir, load_settings
from tollway.store.db import make_engine
from tollway.store.migrate import upgrade_to_head

console = Console()
err_console = Console(stderr=True)


@dataclass
class Store:
    settings: Settings
    engine: Engine
    box: CredentialBox


def global_flags(ctx: typer.Context) -> dict[str, Any]:
    return ctx.find_root().obj or {}


def open_store(ctx: typer.Context, **overrides: Any) -> Store:
    """Load settings (root flags, env, file), make sure the schema is current, and hand back
    the engine the admin services write through."""
    flags = dict(global_flags(ctx))
    flags.update({k: v for k, v in overrides.items() if v is not None})
    config_file = flags.pop("config", None)
    try:
        settings = ensure_data_dir(load_settings(flags, config_file))
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    engine = make_engine(settings.effective_database_url)
    upgrade_to_head(engine)
    return Store(settings=settings, engine=engine, box=CredentialBox(settings.secret_key))
