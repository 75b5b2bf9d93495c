"""`tollway serve`: run the gateway (one process, or several sharing the port)."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from typing import Annotated

import typer
from aiohttp import web

from tollway.admin import tokens
from tollway.admin.demo import DEMO_BALANCE_USD, ensure_demo
from tollway.cli.common import console, err_console, open_store
from tollway.config import Settings
from tollway.http.app import DataDirBusy, build_app
from tollway.providers.demo import DEMO_CHAT_MODEL


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on (TOLLWAY_HOST). Default 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TOLLWAY_PORT). Default 8080.")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="sqlite:///… or postgresql://… (TOLLWAY_DATABASE_URL). Default: SQLite in the data dir."),
    ] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data directory (TOLLWAY_DATA_DIR).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes sharing the port (TOLLWAY_WORKERS). Default 1.")
    ] = None,
    demo: Annotated[bool, typer.Option(help="Set up a demo user, key and the built-in demo model.")] = False,
) -> None:
    """Run the gateway."""
    store = open_store(ctx, host=host, port=port, database_url=database_url, data_dir=data_dir, workers=workers)
    settings = store.settings
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"[bold]Tollway[/bold] on {base}/v1  (data: {settings.data_path}, database: {_db_label(settings)})")
    if not tokens.has_admin_tokens(store.engine):
        token = tokens.create_admin_token(store.engine, "first admin")
        console.print(f"Admin token (shown once, store it now): [bold yellow]{token}[/bold yellow]")
    if demo:
        setup = ensure_demo(store.engine, store.box)
        if setup.api_key:
            console.print(
                f"Demo API key (shown once; user `demo` has ${DEMO_BALANCE_USD}): [bold green]{setup.api_key}[/bold green]"
            )
            console.print("Try it:")
            console.print(
                f"  curl {base}/v1/chat/completions -H 'Authorization: Bearer {setup.api_key}' "
                f"-H 'Content-Type: application/json' "
                f'-d \'{{"model": "{DEMO_CHAT_MODEL}", "messages": [{{"role": "user", "content": "Hello!"}}]}}\'',
                soft_wrap=True,
            )
        else:
            console.print(
                "Demo already set up by an earlier run (its key was shown then; `tollway keys create --user demo` makes another)."
            )
    store.engine.dispose()
    sys.stdout.flush()
    if settings.workers == 1:
        _run_worker(settings, 0)
        return
    processes = [
        multiprocessing.get_context("spawn").Process(target=_run_worker, args=(settings, i), daemon=False)
        for i in range(settings.workers)
    ]
    for process in processes:
        process.start()
    signal.signal(signal.SIGTERM, lambda *_: [p.terminate() for p in processes])
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()


def _db_label(settings: Settings) -> str:
    url = settings.effective_database_url
    return "SQLite" if url.startswith("sqlite") else url.split("@")[-1]


def _run_worker(settings: Settings, worker_index: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if worker_index:
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = build_app(settings, worker_index=worker_index)
    except DataDirBusy as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise SystemExit(1) from exc
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        reuse_port=settings.workers > 1,
        print=None,
        access_log=None,
        shutdown_timeout=30,
    )
