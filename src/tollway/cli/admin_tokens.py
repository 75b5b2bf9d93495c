"""`tollway admin-token ...`: the bearer tokens the admin API (/api/) accepts."""

from __future__ import annotations

from typing import Annotated

import typer

from tollway.admin import tokens as service
from tollway.cli.common import console, open_store
from tollway.cli.output import print_json, print_table, reporting_errors

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A label, to tell tokens apart later.")] = "admin",
) -> None:
    """Create an admin token and print it once."""
    store = open_store(ctx)
    with reporting_errors():
        token = service.create_admin_token(store.engine, name)
    console.print("Admin token (shown once; store it now, it cannot be shown again):")
    typer.echo(token)


@app.command("list")
def list_(ctx: typer.Context, json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List admin tokens (only their last characters are shown)."""
    store = open_store(ctx)
    rows = service.list_admin_tokens(store.engine)
    if json:
        print_json(rows)
        return
    print_table(
        ["id", "name", "ends with", "created"],
        ([r["id"], r["name"], f"…{r['suffix']}", r["created_at"]] for r in rows),
        empty="no admin tokens; `tollway admin-token create` makes one",
    )


@app.command("delete")
def delete(ctx: typer.Context, token_id: int) -> None:
    """Revoke an admin token by id."""
    store = open_store(ctx)
    with reporting_errors():
        service.delete_admin_token(store.engine, token_id)
    console.print(f"admin token {token_id} deleted")
