"""`tollway serve --demo`: a user, a key, prices and the built-in demo channel, so a newcomer
sees a real answer with nothing outside the machine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from tollway.accounts.credentials import CredentialBox
from tollway.admin import channels, keys, prices, users
from tollway.providers.demo import DEMO_CHAT_MODEL, DEMO_EMBEDDING_MODEL
from tollway.store.tables import users as users_table

DEMO_USER = "demo"
DEMO_CHANNEL = "demo"
DEMO_BALANCE_USD = "10"


@dataclass(frozen=True)
class DemoSetup:
    api_key: str | None  # None when the demo was set up by an earlier run (keys are shown once)


def ensure_demo(engine: Engine, box: CredentialBox) -> DemoSetup:
    with engine.connect() as conn:
        exists = conn.execute(select(users_table.c.id).where(users_table.c.name == DEMO_USER)).first() is not None
    if exists:
        return DemoSetup(api_key=None)
    channels.create_channel(
        engine, box, DEMO_CHANNEL, type="demo", models=[DEMO_CHAT_MODEL, DEMO_EMBEDDING_MODEL], groups=["default"]
    )
    prices.set_price(engine, DEMO_CHAT_MODEL, input_usd_per_mtok="0.5", output_usd_per_mtok="1.5")
    prices.set_price(engine, DEMO_EMBEDDING_MODEL, input_usd_per_mtok="0.02")
    users.create_user(engine, DEMO_USER, balance_usd=DEMO_BALANCE_USD)
    created = keys.create_key(engine, DEMO_USER, name="demo", environment="test", project="demo")
    return DemoSetup(api_key=created["key"])
