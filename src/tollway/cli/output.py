"""How the admin commands print: Rich tables for people, --json for scripts, and one way of
reporting a refused operation (red "error: ..." on stderr, exit code 1)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from tollway.cli.common import console, err_console
from tollway.pipeline.errors import GatewayError


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn a service's GatewayError into the CLI's error line and exit status 1."""
    try:
        yield
    except GatewayError as exc:
        err_console.print(f"[red]error: {escape(exc.message_en)}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None


def fail(message: str) -> typer.Exit:
    """Report a CLI-level problem (e.g. an unreadable flag) the same way as a service error."""
    err_console.print(f"[red]error: {escape(message)}[/red]", soft_wrap=True)
    return typer.Exit(1)


def print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def split_list(text: str | None) -> list[str] | None:
    """ "a, b,c" -> ["a", "b", "c"]; None stays None (flag not given)."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}→{v}" for k, v in value.items()) if value else "-"
    return str(value)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str) -> None:
    rows = list(rows)
    if not rows:
        console.print(escape(empty))
        return
    table = Table()
    for column in columns:
        # Wrap rather than cut: a truncated request id or key is useless to copy.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell(v)) for v in row))
    console.print(table)


def show_record(record: dict[str, Any], fields: Sequence[tuple[str, str]], *, as_json: bool) -> None:
    """What every `show` command prints: JSON for scripts, a two-column table for people."""
    if as_json:
        print_json(record)
    else:
        print_record(record, fields)


def print_record(record: dict[str, Any], fields: Sequence[tuple[str, str]]) -> None:
    """One object as a two-column table of (label, value)."""
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, key in fields:
        table.add_row(label, escape(cell(record.get(key))))
    console.print(table)


def print_secret_once(label: str, secret: str) -> None:
    # Plain echo, not Rich: the secret must not be wrapped, styled or truncated when copied.
    typer.echo(f"{label}: {secret}")
    typer.echo("Store it now; it cannot be shown again.")
