"""Run the real `tollway` command in-process against a throwaway SQLite data directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tollway.cli.main import app

Invoke = Callable[..., Result]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Settings from the surrounding environment must not point the CLI elsewhere.
    for name in ("TOLLWAY_CONFIG", "TOLLWAY_DATABASE_URL", "TOLLWAY_DATA_DIR", "TOLLWAY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


@pytest.fixture
def tollway(data_dir: Path) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        # Wide enough that Rich never wraps a cell the assertions look for.
        return runner.invoke(app, ["--data-dir", str(data_dir), *args], env={"COLUMNS": "250", **(env or {})})

    return invoke
