"""Throwaway databases for tests: a SQLite file in a temp dir, or a PostgreSQL database created
for the test and dropped after it, so parallel runs never collide."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tollway.store.db import make_engine

POSTGRES_ADMIN_URL = os.environ.get("TOLLWAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_available() -> bool:
    try:
        engine = make_engine(POSTGRES_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@contextmanager
def temporary_postgres_url() -> Iterator[str]:
    name = f"tollway_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def temporary_database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'tollway.db'}"
    else:
        with temporary_postgres_url() as url:
            yield url
