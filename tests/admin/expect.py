"""Assertions shared by the admin service tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine

from tollway.pipeline.errors import ErrorKind, GatewayError
from tollway.store.db import read_config_version


@contextmanager
def gateway_error(kind: ErrorKind, *, param: str | None, match: str = "") -> Iterator[Any]:
    """The block must raise a GatewayError of this kind, naming `param`, with both languages."""
    with pytest.raises(GatewayError) as info:
        yield info
    err = info.value
    assert err.kind is kind, err.message_en
    assert err.param == param
    assert match in err.message_en
    assert err.message_zh and err.message_zh != err.message_en


def config_version(engine: Engine) -> int:
    with engine.connect() as conn:
        return read_config_version(conn)
