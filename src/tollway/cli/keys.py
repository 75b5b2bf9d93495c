"""`tollway keys ...`: API keys. A key is printed once, at creation, and never again."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.admin import keys as service
from tollway.admin.validation import UNSET
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
    split_list,
)

app = typer.Typer(no_args_is_help=True)

FIELDS = (
    ("id", "id"),
    ("name", "name"),
    ("user", "user"),
    ("key", "masked"),
    ("status", "status"),
    ("environment", "environment"),
    ("project", "project"),
    ("spend limit (USD, - = none)", "spend_limit_usd"),
    ("spent (USD)", "spent_usd"),
    ("expires (- = never)", "expires_at"),
    ("models (- = group's)", "allowed_models"),
    ("IPs (- = any)", "allowed_ips"),
    ("created", "created_at"),
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
KeyId = Annotated[int, typer.Argument(help="Key id, from `tollway keys list`.")]
NameOption = Annotated[str | None, typer.Option(help="A label for the key.")]
LimitOption = Annotated[str | None, typer.Option("--limit", help="Most this key may spend, in USD.")]
ExpiresOption = Annotated[
    str | None, typer.Option("--expires", help="When it stops working: 30d, 12h, or a date like 2027-01-01.")
]
ModelsOption = Annotated[str | None, typer.Option("--models", help="Comma-separated models this key may use.")]
IpsOption = Annotated[
    str | None, typer.Option("--ips", help="Comma-separated IPs/CIDRs it may be used from, e.g. 10.0.0.0/8,1.2.3.4.")
]
EnvOption = Annotated[str | None, typer.Option("--env", help="test or prod.")]
ProjectOption = Annotated[str | None, typer.Option(help="Project label shown in logs.")]


@app.command("create")
def create(
    ctx: typer.Context,
    user: Annotated[str, typer.Option(help="Owner of the key.")],
    name: NameOption = None,
    limit: LimitOption = None,
    expires: ExpiresOption = None,
    models: ModelsOption = None,
    ips: IpsOption = None,
    env: EnvOption = None,
    project: ProjectOption = None,
) -> None:
    """Create an API key and print it once."""
    store = open_store(ctx)
    with reporting_errors():
        key = service.create_key(
            store.engine,
            user,
            name=name or "default",
            spend_limit_usd=limit,
            expires_at=expires,
            allowed_models=split_list(models),
            allowed_ips=split_list(ips),
            environment=env or "prod",
            project=project,
        )
    print_record(key, FIELDS)
    print_secret_once(f"API key {key['id']}", key["key"])


@app.command("list")
def list_(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Only this user's keys.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List keys (masked)."""
    store = open_store(ctx)
    with reporting_errors():
        rows = service.list_keys(store.engine, user=user)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["id", "user", "name", "key", "status", "env", "limit", "spent", "expires"],
        (
            [
                k["id"],
                k["user"],
                k["name"],
                k["masked"],
                k["status"],
                k["environment"],
                "none" if k["spend_limit_nano"] is None else format_usd(k["spend_limit_nano"]),
                format_usd(k["spent_nano"]),
                k["expires_at"] or "never",
            ]
            for k in rows
        ),
        empty="No keys. Create one with `tollway keys create --user NAME`.",
    )


@app.command("show")
def show(ctx: typer.Context, key_id: KeyId, as_json: JsonFlag = False) -> None:
    """Show one key (masked)."""
    store = open_store(ctx)
    with reporting_errors():
        key = service.get_key(store.engine, key_id)
    show_record(key, FIELDS, as_json=as_json)


@app.command("set")
def set_(
    ctx: typer.Context,
    key_id: KeyId,
    name: NameOption = None,
    status: Annotated[str | None, typer.Option(help="active or disabled.")] = None,
    limit: LimitOption = None,
    unlimited: Annotated[bool, typer.Option("--unlimited", help="Remove the spend limit.")] = False,
    expires: ExpiresOption = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Never expire.")] = False,
    models: ModelsOption = None,
    all_models: Annotated[bool, typer.Option("--all-models", help="Any model the group allows.")] = False,
    ips: IpsOption = None,
    any_ip: Annotated[bool, typer.Option("--any-ip", help="Usable from any IP.")] = False,
    env: EnvOption = None,
    project: ProjectOption = None,
    no_project: Annotated[bool, typer.Option("--no-project", help="Clear the project label.")] = False,
) -> None:
    """Change a key; options left out keep their value."""
    changes: dict[str, Any] = {
        "spend_limit_usd": _either(limit, unlimited, "--limit", "--unlimited"),
        "expires_at": _either(expires, no_expiry, "--expires", "--no-expiry"),
        "allowed_models": _either(split_list(models), all_models, "--models", "--all-models"),
        "allowed_ips": _either(split_list(ips), any_ip, "--ips", "--any-ip"),
        "project": _either(project, no_project, "--project", "--no-project"),
    }
    _update(ctx, key_id, name=name, status=status, environment=env, **changes)


@app.command("disable")
def disable(ctx: typer.Context, key_id: KeyId) -> None:
    """Stop a key from working (reversible with `enable`)."""
    _update(ctx, key_id, status="disabled")


@app.command("enable")
def enable(ctx: typer.Context, key_id: KeyId) -> None:
    """Let a disabled key work again."""
    _update(ctx, key_id, status="active")


@app.command("delete")
def delete(ctx: typer.Context, key_id: KeyId) -> None:
    """Delete a key for good."""
    store = open_store(ctx)
    with reporting_errors():
        service.delete_key(store.engine, key_id)
    console.print(f"Deleted key {key_id}.")


def _either(value: Any, clear: bool, value_flag: str, clear_flag: str) -> Any:
    """UNSET when neither flag was given, None for the clearing flag, else the value."""
    if value is not None and clear:
        raise fail(f"give either {value_flag} or {clear_flag}, not both")
    if clear:
        return None
    return UNSET if value is None else value


def _update(ctx: typer.Context, key_id: int, **changes: Any) -> None:
    store = open_store(ctx)
    with reporting_errors():
        key = service.update_key(store.engine, key_id, **changes)
    print_record(key, FIELDS)
