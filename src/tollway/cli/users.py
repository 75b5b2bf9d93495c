"""`tollway users ...`: accounts, their group, and their balance."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from tollway.admin import keys as key_service
from tollway.admin import users as service
from tollway.billing.money import format_usd
from tollway.cli.common import console, open_store
from tollway.cli.output import (
    fail,
    print_json,
    print_record,
    print_secret_once,
    print_table,
    reporting_errors,
    show_record,
)

app = typer.Typer(no_args_is_help=True)

FIELDS = (
    ("name", "name"),
    ("group", "group"),
    ("balance (USD)", "balance_usd"),
    ("status", "status"),
    ("role", "role"),
    ("email", "email"),
    ("created", "created_at"),
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NoteOption = Annotated[str, typer.Option(help="Why, for the ledger.")]


@app.command("add")
def add(
    ctx: typer.Context,
    name: str,
    group: Annotated[str, typer.Option(help="Group the user joins.")] = "default",
    balance: Annotated[str, typer.Option(help="Starting balance in USD, e.g. 5 or 0.25.")] = "0",
    role: Annotated[str, typer.Option(help="user or admin.")] = "user",
    email: Annotated[str | None, typer.Option(help="Contact address.")] = None,
    with_key: Annotated[bool, typer.Option("--with-key", help="Also create an API key named `default`.")] = False,
) -> None:
    """Create a user (optionally with a first API key)."""
    store = open_store(ctx)
    with reporting_errors():
        user = service.create_user(store.engine, name, group=group, balance_usd=balance, role=role, email=email)
    console.print(f"Created user [bold]{escape(user['name'])}[/bold].")
    print_record(user, FIELDS)
    if with_key:
        with reporting_errors():
            key = key_service.create_key(store.engine, user["name"], name="default")
        print_secret_once(f"API key {key['id']} ({key['masked']})", key["key"])


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List users."""
    store = open_store(ctx)
    with reporting_errors():
        rows = service.list_users(store.engine)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["name", "group", "balance", "status", "role", "email"],
        ([u["name"], u["group"], format_usd(u["balance_nano"]), u["status"], u["role"], u["email"]] for u in rows),
        empty="No users yet. Add one with `tollway users add NAME`.",
    )


@app.command("show")
def show(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Show one user."""
    store = open_store(ctx)
    with reporting_errors():
        user = service.get_user(store.engine, name)
    show_record(user, FIELDS, as_json=as_json)


@app.command("set")
def set_(
    ctx: typer.Context,
    name: str,
    status: Annotated[str | None, typer.Option(help="active or disabled.")] = None,
    group: Annotated[str | None, typer.Option(help="Move to this group.")] = None,
    role: Annotated[str | None, typer.Option(help="user or admin.")] = None,
    email: Annotated[str | None, typer.Option(help='New address ("" clears it).')] = None,
) -> None:
    """Change a user; options left out keep their value."""
    store = open_store(ctx)
    with reporting_errors():
        user = service.update_user(store.engine, name, status=status, group=group, role=role, email=email)
    print_record(user, FIELDS)


@app.command("topup")
def topup(ctx: typer.Context, name: str, usd: str, note: NoteOption = "") -> None:
    """Add USD to a user's balance."""
    _adjust(ctx, name, usd, note, sign="")


@app.command("deduct")
def deduct(ctx: typer.Context, name: str, usd: str, note: NoteOption = "") -> None:
    """Take USD from a user's balance (never below zero)."""
    _adjust(ctx, name, usd, note, sign="-")


@app.command("ledger")
def ledger(
    ctx: typer.Context,
    name: str,
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Show a user's balance history, newest first."""
    store = open_store(ctx)
    with reporting_errors():
        rows = service.list_ledger(store.engine, name, limit=limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["time", "kind", "amount", "reference", "note"],
        ([e["created_at"], e["kind"], format_usd(e["amount_nano"]), e["request_id"], e["note"]] for e in rows),
        empty=f"No ledger entries for {name}.",
    )


def _adjust(ctx: typer.Context, name: str, usd: str, note: str, *, sign: str) -> None:
    # The command says the direction, so the amount itself must be unsigned.
    if usd.strip().startswith(("-", "+")):
        raise fail(f"give the amount without a sign, e.g. `{usd.strip()[1:]}`")
    store = open_store(ctx)
    with reporting_errors():
        user = service.adjust_balance(store.engine, name, sign + usd.strip(), note=note)
    console.print(f"Balance of [bold]{escape(user['name'])}[/bold] is now {format_usd(user['balance_nano'])}.")
