"""Fixtures shared by every test: a migrated store on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.databases import temporary_database_url
from tollway.accounts.credentials import CredentialBox
from tollway.store.db import make_engine
from tollway.store.migrate import upgrade_to_head


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL; every test using it runs once per backend."""
    with temporary_database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated store on each backend."""
    eng = make_engine(database_url)
    upgrade_to_head(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite store, for tests whose subject is not the database."""
    eng = make_engine(f"sqlite:///{tmp_path / 'tollway.db'}")
    upgrade_to_head(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def credential_box() -> CredentialBox:
    return CredentialBox("test-secret-key-not-for-production")
