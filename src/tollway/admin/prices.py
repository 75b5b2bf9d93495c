"""Model prices, in USD per 1M tokens (or a flat USD price per request), stored as nano-USD."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Executable, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from tollway.admin.validation import check_model_name, not_found, parse_usd, usd_text
from tollway.store.db import bump_config_version, now_ms
from tollway.store.tables import model_prices


def set_price(
    engine: Engine,
    model: str,
    *,
    input_usd_per_mtok: str = "0",
    output_usd_per_mtok: str = "0",
    cached_input_usd_per_mtok: str | None = None,
    per_request_usd: str | None = None,
) -> dict[str, Any]:
    """Create or replace the price of one model: every field takes the value given here."""
    model = check_model_name(model, param="model")
    values = {
        "input_nano_per_mtok": parse_usd(input_usd_per_mtok, param="input_usd_per_mtok"),
        "output_nano_per_mtok": parse_usd(output_usd_per_mtok, param="output_usd_per_mtok"),
        "cached_input_nano_per_mtok": _optional(cached_input_usd_per_mtok, "cached_input_usd_per_mtok"),
        "per_request_nano": _optional(per_request_usd, "per_request_usd"),
    }
    with engine.begin() as conn:
        conn.execute(_upsert(conn, model, values))
        bump_config_version(conn)
    return get_price(engine, model)


def get_price(engine: Engine, model: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return _to_dict(_require(conn, model))


def list_prices(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(model_prices).order_by(model_prices.c.model)).mappings()
        return [_to_dict(row) for row in rows]


def delete_price(engine: Engine, model: str) -> None:
    with engine.begin() as conn:
        row = _require(conn, model)
        conn.execute(delete(model_prices).where(model_prices.c.id == row["id"]))
        bump_config_version(conn)


def _upsert(conn: Connection, model: str, values: dict[str, Any]) -> Executable:
    # A native upsert, so two admins pricing the same new model at once cannot collide.
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(model_prices).values(model=model, created_at_ms=now_ms(), **values)
    return stmt.on_conflict_do_update(index_elements=[model_prices.c.model], set_=values)


def _optional(value: str | None, param: str) -> int | None:
    return None if value is None else parse_usd(value, param=param)


def _require(conn: Connection, model: str) -> RowMapping:
    row = conn.execute(select(model_prices).where(model_prices.c.model == model)).mappings().first()
    if row is None:
        not_found(
            f"model `{model}` has no price; set one with `tollway prices set {model} --input USD --output USD`",
            f"模型 `{model}` 还没有价格；请用 `tollway prices set {model} --input USD --output USD` 设置",
            "model",
        )
    return row


def _to_dict(row: RowMapping) -> dict[str, Any]:
    return {
        "model": row["model"],
        "input_usd_per_mtok": usd_text(row["input_nano_per_mtok"]),
        "output_usd_per_mtok": usd_text(row["output_nano_per_mtok"]),
        "cached_input_usd_per_mtok": usd_text(row["cached_input_nano_per_mtok"]),
        "per_request_usd": usd_text(row["per_request_nano"]),
        "input_nano_per_mtok": row["input_nano_per_mtok"],
        "output_nano_per_mtok": row["output_nano_per_mtok"],
        "cached_input_nano_per_mtok": row["cached_input_nano_per_mtok"],
        "per_request_nano": row["per_request_nano"],
    }
