"""The `tollway` command. Sub-commands only parse arguments and call admin services."""

from __future__ import annotations

from typing import Annotated

import typer

from tollway.cli import admin_tokens, channels, groups, keys, logs, prices, serve, users

app = typer.Typer(
    name="tollway",
    help="Tollway: a self-hosted, OpenAI-compatible AI API gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option(help="TOML config file (or TOLLWAY_CONFIG).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data directory (or TOLLWAY_DATA_DIR).")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///… or postgresql://… (or TOLLWAY_DATABASE_URL).")
    ] = None,
) -> None:
    ctx.obj = {"config": config, "data_dir": data_dir, "database_url": database_url}


serve.register(app)
app.add_typer(users.app, name="users", help="Users and their balances.")
app.add_typer(groups.app, name="groups", help="Groups: price multiplier and allowed models.")
app.add_typer(keys.app, name="keys", help="API keys.")
app.add_typer(channels.app, name="channels", help="Upstream channels.")
app.add_typer(prices.app, name="prices", help="Model prices (USD per 1M tokens or per request).")
app.add_typer(logs.app, name="logs", help="Query the request log.")
app.add_typer(admin_tokens.app, name="admin-token", help="Tokens for the admin API under /api/.")
