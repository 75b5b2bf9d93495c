"""`tollway channels ...`: upstreams requests are routed to. Credentials go in, never out."""

from __future__ import annotations

import os
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from tollway.admin import channels as service
from tollway.admin.validation import UNSET
from tollway.cli.common import console, open_store
from tollway.cli.output import fail, print_json, print_record, print_table, reporting_errors, show_record, split_list

app = typer.Typer(no_args_is_help=True)

FIELDS = (
    ("name", "name"),
    ("type", "type"),
    ("base URL", "base_url"),
    ("credential set", "has_credential"),
    ("models", "models"),
    ("mapping", "model_mapping"),
    ("groups", "groups"),
    ("priority", "priority"),
    ("weight", "weight"),
    ("status", "status"),
    ("created", "created_at"),
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
BaseUrlOption = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-style base incl. version, e.g. https://api.openai.com/v1.")
]
KeyOption = Annotated[
    str | None, typer.Option("--key", help="Upstream API key (prefer --key-env: keeps it out of shell history).")
]
KeyEnvOption = Annotated[str | None, typer.Option("--key-env", help="Read the upstream API key from this env var.")]
ModelsOption = Annotated[str | None, typer.Option("--models", help="Comma-separated models clients may request.")]
MapOption = Annotated[list[str] | None, typer.Option("--map", help="requested=upstream model name; repeat for more.")]
GroupsOption = Annotated[str | None, typer.Option("--groups", help="Comma-separated groups it serves.")]
PriorityOption = Annotated[int | None, typer.Option(help="Higher is tried first.")]
WeightOption = Annotated[int | None, typer.Option(help="Share of traffic among equal priorities (>= 1).")]


@app.command("add")
def add(
    ctx: typer.Context,
    name: str,
    type: Annotated[str, typer.Option("--type", help="openai or demo.")],
    models: Annotated[str, typer.Option("--models", help="Comma-separated models clients may request.")],
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
    key_env: KeyEnvOption = None,
    map_: MapOption = None,
    groups: GroupsOption = None,
    priority: PriorityOption = None,
    weight: WeightOption = None,
) -> None:
    """Add a channel."""
    credential = _credential(key, key_env)
    store = open_store(ctx)
    with reporting_errors():
        channel = service.create_channel(
            store.engine,
            store.box,
            name,
            type=type,
            base_url=base_url or "",
            credential=credential,
            models=split_list(models) or [],
            model_mapping=_mapping(map_) or {},
            groups=split_list(groups),
            priority=0 if priority is None else priority,
            weight=1 if weight is None else weight,
        )
    console.print(f"Added channel [bold]{escape(channel['name'])}[/bold].")
    print_record(channel, FIELDS)
    _hint_base_url(channel)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List channels, highest priority first."""
    store = open_store(ctx)
    with reporting_errors():
        rows = service.list_channels(store.engine)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["name", "type", "base URL", "models", "groups", "priority", "weight", "status"],
        (
            [
                c["name"],
                c["type"],
                c["base_url"] or "-",
                c["models"],
                c["groups"],
                c["priority"],
                c["weight"],
                c["status"],
            ]
            for c in rows
        ),
        empty="No channels. Add one with `tollway channels add NAME --type openai ...`.",
    )


@app.command("show")
def show(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Show one channel (never its credential)."""
    store = open_store(ctx)
    with reporting_errors():
        channel = service.get_channel(store.engine, name)
    show_record(channel, FIELDS, as_json=as_json)


@app.command("set")
def set_(
    ctx: typer.Context,
    name: str,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
    key_env: KeyEnvOption = None,
    no_key: Annotated[bool, typer.Option("--no-key", help="Remove the stored credential.")] = False,
    models: ModelsOption = None,
    map_: MapOption = None,
    clear_map: Annotated[bool, typer.Option("--clear-map", help="Remove every model mapping.")] = False,
    groups: GroupsOption = None,
    priority: PriorityOption = None,
    weight: WeightOption = None,
    status: Annotated[str | None, typer.Option(help="enabled or disabled.")] = None,
) -> None:
    """Change a channel; options left out keep their value."""
    credential: Any = UNSET
    if no_key:
        if key is not None or key_env is not None:
            raise fail("give either --key/--key-env or --no-key, not both")
        credential = None
    elif key is not None or key_env is not None:
        credential = _credential(key, key_env)
    if map_ and clear_map:
        raise fail("give either --map or --clear-map, not both")
    mapping = {} if clear_map else _mapping(map_)
    _update(
        ctx,
        name,
        base_url=base_url,
        credential=credential,
        models=split_list(models),
        model_mapping=mapping,
        groups=split_list(groups),
        priority=priority,
        weight=weight,
        status=status,
    )


@app.command("disable")
def disable(ctx: typer.Context, name: str) -> None:
    """Stop routing to a channel."""
    _update(ctx, name, status="disabled")


@app.command("enable")
def enable(ctx: typer.Context, name: str) -> None:
    """Route to a channel again."""
    _update(ctx, name, status="enabled")


@app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Delete a channel."""
    store = open_store(ctx)
    with reporting_errors():
        service.delete_channel(store.engine, name)
    console.print(f"Removed channel [bold]{escape(name)}[/bold].")


def _update(ctx: typer.Context, name: str, **changes: Any) -> None:
    store = open_store(ctx)
    with reporting_errors():
        channel = service.update_channel(store.engine, store.box, name, **changes)
    print_record(channel, FIELDS)
    _hint_base_url(channel)


def _credential(key: str | None, key_env: str | None) -> str | None:
    if key is not None and key_env is not None:
        raise fail("give either --key or --key-env, not both")
    if key_env is None:
        return key
    value = os.environ.get(key_env, "")
    if not value.strip():
        raise fail(f"environment variable {key_env} is not set or empty; export it first")
    return value


def _mapping(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    mapping: dict[str, str] = {}
    for pair in pairs:
        requested, sep, upstream = pair.partition("=")
        if not sep or not requested.strip() or not upstream.strip():
            raise fail(f"--map `{pair}` must look like requested=upstream, e.g. gpt-4o=gpt-4o-2024-08-06")
        mapping[requested.strip()] = upstream.strip()
    return mapping


def _hint_base_url(channel: dict[str, Any]) -> None:
    # Not an error (some servers really live at the root), but the usual cause of 404s upstream.
    if channel["type"] == "openai" and urlsplit(channel["base_url"]).path in ("", "/"):
        console.print("note: the base URL has no path; most OpenAI-compatible servers expect one ending in `/v1`.")
