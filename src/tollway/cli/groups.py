"""`tollway groups ...`: price multipliers and model allow-lists."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from tollway.admin import groups as service
from tollway.admin.validation import UNSET, Unset
from tollway.cli.common import console, open_store
from tollway.cli.output import fail, print_json, print_record, print_table, reporting_errors, show_record, split_list

app = typer.Typer(no_args_is_help=True)

FIELDS = (
    ("name", "name"),
    ("multiplier", "price_multiplier"),
    ("models (- = all)", "allowed_models"),
    ("users", "user_count"),
    ("description", "description"),
    ("created", "created_at"),
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ModelsOption = Annotated[
    str | None, typer.Option("--models", help="Comma-separated models the group may use (default: all).")
]


@app.command("add")
def add(
    ctx: typer.Context,
    name: str,
    multiplier: Annotated[str, typer.Option(help="Price multiplier, e.g. 0.85.")] = "1",
    models: ModelsOption = None,
    description: Annotated[str, typer.Option(help="Free text for admins.")] = "",
) -> None:
    """Create a group."""
    store = open_store(ctx)
    with reporting_errors():
        group = service.create_group(
            store.engine,
            name,
            price_multiplier=multiplier,
            allowed_models=split_list(models),
            description=description,
        )
    console.print(f"Created group [bold]{escape(name)}[/bold].")
    print_record(group, FIELDS)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List groups."""
    store = open_store(ctx)
    with reporting_errors():
        rows = service.list_groups(store.engine)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["name", "multiplier", "models", "users", "description"],
        (
            [
                g["name"],
                g["price_multiplier"],
                g["allowed_models"] or "all",
                g["user_count"],
                g["description"],
            ]
            for g in rows
        ),
        empty="No groups.",
    )


@app.command("show")
def show(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Show one group."""
    store = open_store(ctx)
    with reporting_errors():
        group = service.get_group(store.engine, name)
    show_record(group, FIELDS, as_json=as_json)


@app.command("set")
def set_(
    ctx: typer.Context,
    name: str,
    multiplier: Annotated[str | None, typer.Option(help="New price multiplier.")] = None,
    models: ModelsOption = None,
    all_models: Annotated[bool, typer.Option("--all-models", help="Allow every model.")] = False,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
) -> None:
    """Change a group; options left out keep their value."""
    if models is not None and all_models:
        raise fail("give either --models or --all-models, not both")
    allowed: Any = UNSET
    if all_models:
        allowed = None
    elif models is not None:
        allowed = split_list(models)
    store = open_store(ctx)
    with reporting_errors():
        group = service.update_group(
            store.engine, name, price_multiplier=multiplier, allowed_models=allowed, description=description
        )
    if isinstance(allowed, Unset) and multiplier is None and description is None:
        console.print("Nothing to change.")
    print_record(group, FIELDS)


@app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Delete a group that has no users."""
    store = open_store(ctx)
    with reporting_errors():
        service.delete_group(store.engine, name)
    console.print(f"Removed group [bold]{escape(name)}[/bold].")


def _models(group: dict[str, Any]) -> Any:
    return "all" if group["allowed_models"] is None else group["allowed_models"]
