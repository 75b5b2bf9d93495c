"""`tollway prices ...`: what each model costs, in USD per 1M tokens or per request."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from sqlalchemy import Engine

from tollway.admin import prices as service
from tollway.cli.common import console, open_store
from tollway.cli.output import fail, print_json, print_record, print_table, reporting_errors, show_record
from tollway.pipeline.errors import NOT_FOUND, GatewayError

app = typer.Typer(no_args_is_help=True)

FIELDS = (
    ("model", "model"),
    ("input (USD / 1M tokens)", "input_usd_per_mtok"),
    ("output (USD / 1M tokens)", "output_usd_per_mtok"),
    ("cached input (- = as input)", "cached_input_usd_per_mtok"),
    ("per request (USD, - = per token)", "per_request_usd"),
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("set")
def set_(
    ctx: typer.Context,
    model: str,
    input: Annotated[str | None, typer.Option("--input", help="USD per 1M prompt tokens.")] = None,
    output: Annotated[str | None, typer.Option("--output", help="USD per 1M completion tokens.")] = None,
    cached_input: Annotated[str | None, typer.Option("--cached-input", help="USD per 1M cached prompt tokens.")] = None,
    per_request: Annotated[
        str | None, typer.Option("--per-request", help="Flat USD per request instead of per token.")
    ] = None,
    clear_cached_input: Annotated[
        bool, typer.Option("--clear-cached-input", help="Charge cached tokens like input again.")
    ] = False,
    clear_per_request: Annotated[
        bool, typer.Option("--clear-per-request", help="Go back to per-token pricing.")
    ] = False,
) -> None:
    """Set a model's price. For a model already priced, options left out keep their value."""
    if cached_input is not None and clear_cached_input:
        raise fail("give either --cached-input or --clear-cached-input, not both")
    if per_request is not None and clear_per_request:
        raise fail("give either --per-request or --clear-per-request, not both")
    store = open_store(ctx)
    with reporting_errors():
        current = _current(store.engine, model)
        price = service.set_price(
            store.engine,
            model,
            input_usd_per_mtok=input or current.get("input_usd_per_mtok") or "0",
            output_usd_per_mtok=output or current.get("output_usd_per_mtok") or "0",
            cached_input_usd_per_mtok=None
            if clear_cached_input
            else cached_input or current.get("cached_input_usd_per_mtok"),
            per_request_usd=None if clear_per_request else per_request or current.get("per_request_usd"),
        )
    print_record(price, FIELDS)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List model prices."""
    store = open_store(ctx)
    with reporting_errors():
        rows = service.list_prices(store.engine)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["model", "input / 1M", "output / 1M", "cached input / 1M", "per request"],
        (
            [
                p["model"],
                p["input_usd_per_mtok"],
                p["output_usd_per_mtok"],
                p["cached_input_usd_per_mtok"] or "as input",
                p["per_request_usd"],
            ]
            for p in rows
        ),
        empty="No prices. Set one with `tollway prices set MODEL --input USD --output USD`.",
    )


@app.command("show")
def show(ctx: typer.Context, model: str, as_json: JsonFlag = False) -> None:
    """Show one model's price."""
    store = open_store(ctx)
    with reporting_errors():
        price = service.get_price(store.engine, model)
    show_record(price, FIELDS, as_json=as_json)


@app.command("remove")
def remove(ctx: typer.Context, model: str) -> None:
    """Delete a model's price."""
    store = open_store(ctx)
    with reporting_errors():
        service.delete_price(store.engine, model)
    console.print(f"Removed the price of [bold]{escape(model)}[/bold].")


def _current(engine: Engine, model: str) -> dict[str, Any]:
    try:
        return service.get_price(engine, model)
    except GatewayError as exc:
        if exc.kind is NOT_FOUND:
            return {}
        raise
