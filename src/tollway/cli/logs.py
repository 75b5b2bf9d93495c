"""`tollway logs ...`: answer "why did this fail / why was I charged" from the request log."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.billing.money import format_usd
from tollway.cli.common import open_store
from tollway.cli.output import print_json, print_record, print_table, reporting_errors
from tollway.logs import query as service

app = typer.Typer(no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("list")
def list_(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="From: 15m, 2h, 7d ago, or an ISO-8601 time.")] = None,
    until: Annotated[str | None, typer.Option(help="Up to (exclusive): same forms as --since.")] = None,
    user: Annotated[str | None, typer.Option(help="User name.")] = None,
    key: Annotated[int | None, typer.Option("--key", help="Key id.")] = None,
    model: Annotated[str | None, typer.Option(help="Requested model.")] = None,
    status: Annotated[str | None, typer.Option(help="An HTTP status (500), `error` (>= 400) or `ok`.")] = None,
    request_id: Annotated[str | None, typer.Option("--request-id", help="One request id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (1-1000).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many newest rows first.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """List requests, newest first."""
    store = open_store(ctx)
    with reporting_errors():
        log_filter = service.LogFilter(
            start_ms=None if since is None else service.parse_time(since, param="since"),
            end_ms=None if until is None else service.parse_time(until, param="until"),
            user=user,
            key_id=key,
            model=model,
            status=status,
            request_id=request_id,
            limit=limit,
            offset=offset,
        )
        rows = service.query_logs(store.engine, log_filter)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["time", "request id", "user", "key", "model", "status", "tokens p/c", "cost", "charged"],
        (_row(entry) for entry in rows),
        empty="No requests match.",
    )


@app.command("show")
def show(ctx: typer.Context, request_id: str, as_json: JsonFlag = False) -> None:
    """Everything logged about one request."""
    store = open_store(ctx)
    with reporting_errors():
        entry = service.get_log(store.engine, request_id)
    if as_json:
        print_json(entry)
    else:
        print_record(entry, [(name, name) for name in entry])


def _row(entry: dict[str, Any]) -> list[Any]:
    status = str(entry["status_code"])
    if entry["error_code"]:
        status += f" {entry['error_code']}"
    # "~" marks counts Tollway estimated because the upstream reported none.
    approx = "~" if entry["usage_source"] == "estimated" else ""
    key = None if entry["key_id"] is None else f"{entry['key_id']} {entry['key_name'] or ''}".strip()
    return [
        entry["created_at"],
        entry["request_id"],
        entry["user_name"],
        key,
        entry["requested_model"],
        status,
        f"{approx}{entry['prompt_tokens']}/{approx}{entry['completion_tokens']}",
        format_usd(entry["cost_nano"]),
        entry["charged"],
    ]
