"""Engine creation for SQLite (embedded default) and PostgreSQL, plus the config-version bump."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.engine import Connection, make_url

from tollway.store.tables import config_version


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and pick the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def sqlite_url_for(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'tollway.db').resolve()}"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    url = normalize_database_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling does not issue BEGIN before SELECT; take the
        # write lock up front so a read-then-write transaction cannot be raced (leases rely on it).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True, hide_parameters=True)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_conn.isolation_level = None  # let the "begin" listener control transactions
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Read pages through a memory map and keep more of them cached: without this every batch
    # commit re-reads index pages with a pread system call each (measured with strace under
    # bench/run.py: ~10 per request).
    cursor.execute("PRAGMA mmap_size=268435456")
    cursor.execute("PRAGMA cache_size=-32000")
    cursor.close()


def bump_config_version(conn: Connection) -> int:
    """Called inside every config-writing transaction; running gateways poll this row."""
    conn.execute(update(config_version).where(config_version.c.id == 1).values(version=config_version.c.version + 1))
    return int(conn.execute(select(config_version.c.version).where(config_version.c.id == 1)).scalar_one())


def read_config_version(conn: Connection) -> int:
    return int(conn.execute(select(config_version.c.version).where(config_version.c.id == 1)).scalar_one())
