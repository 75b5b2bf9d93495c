"""End-to-end fixtures: a real `tollway serve` process in front of the fake OpenAI-compatible
upstream, configured through the same admin services the CLI and admin API use, and driven by
the official `openai` SDK.

One server per test module (starting one costs a couple of seconds); every test takes its own
user and key from `Stage.account`, so balances and log rows never mix between tests.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import Engine, select

from tests.support.fake_upstream import FakeUpstream, RecordedRequest
from tests.support.gateway import GatewayProcess
from tollway.admin import channels, groups, keys, prices, users
from tollway.store.tables import request_logs
from tollway.store.tables import users as users_table

# Distinctive, so a leak is unmistakable wherever it shows up.
UPSTREAM_KEY = "sk-upstream-e2e-7f3a9c1d5b"

INPUT_USD, OUTPUT_USD = "2", "8"  # per 1M tokens
INPUT_NANO_PER_MTOK, OUTPUT_NANO_PER_MTOK = 2_000_000_000, 8_000_000_000
MULTIPLIER = "1.5"
MULTIPLIER_PPM = 1_500_000
PRICED_GROUP = "e2e"  # every test account's group unless it asks for another
NARROW_GROUP = "narrow"  # a group limited to two models
NARROW_MODELS = ["gpt-4o-mini", "text-embedding-3-small"]

CHAT_MODELS = [
    "gpt-4o-mini",
    "fake-model",
    "alias-model",  # mapped to fake-model on the channel
    "fail-400-gpt",
    "fail-401-gpt",
    "fail-429-gpt",
    "fail-500-gpt",
    "slow-5000-gpt",  # answers after the server's 3 s read timeout
    "slow-1500-gpt",  # answers after a client with a 0.5 s timeout has hung up
    "stall-1500-gpt",  # streams: headers at once, first chunk after 1.5 s
    "drip-4000-gpt",  # the role chunk at once, then silence past the read timeout
    "cut-3-gpt",
    "drip-200-gpt",
    "nousage-gpt",
]
EMBEDDING_MODEL = "text-embedding-3-small"
UNPRICED_MODEL = "unpriced-model"  # on the channel, never priced
ORPHAN_MODEL = "orphan-model"  # priced, on no channel
CHANNEL = "fake"


def expected_cost(prompt_tokens: int, completion_tokens: int, multiplier_ppm: int = MULTIPLIER_PPM) -> int:
    """The exact nano-USD charge for a chat model priced at INPUT_USD / OUTPUT_USD. The tests'
    numbers divide evenly, so there is no rounding to mirror here."""
    numerator = (prompt_tokens * INPUT_NANO_PER_MTOK + completion_tokens * OUTPUT_NANO_PER_MTOK) * multiplier_ppm
    assert numerator % (1_000_000 * 1_000_000) == 0, "pick token counts that divide evenly"
    return numerator // (1_000_000 * 1_000_000)


@dataclass(frozen=True)
class Account:
    user: str
    user_id: int
    key: str  # the full secret, as create_key returned it once
    key_id: int
    balance_nano: int


class Stage:
    """A running gateway plus the fake upstream behind it, with the helpers tests share."""

    _names = itertools.count(1)

    def __init__(self, gateway: GatewayProcess, fake: FakeUpstream | None) -> None:
        self.gateway = gateway
        self.fake = fake
        self._clients: dict[str, openai.OpenAI] = {}

    @property
    def engine(self) -> Engine:
        return self.gateway.engine

    # -- accounts ------------------------------------------------------------------------------

    def account(self, *, balance_usd: str = "10", group: str = PRICED_GROUP, **key_options: Any) -> Account:
        name = f"u{next(self._names)}-{int(time.time() * 1000) % 100000}"
        created = users.create_user(self.engine, name, group=group, balance_usd=balance_usd)
        key = keys.create_key(self.engine, name, **key_options)
        self.wait_for_key(key["key"])
        return Account(name, created["id"], key["key"], key["id"], created["balance_nano"])

    def wait_for_key(self, secret: str, timeout_s: float = 5.0) -> None:
        """The server picks up config within ~0.1 s; wait until it knows the key (any answer
        but invalid_api_key), so a test never races the snapshot poll."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.client(secret).models.list()
                return
            except openai.APIStatusError as exc:
                if exc.code != "invalid_api_key":
                    return
                if time.monotonic() > deadline:
                    raise

    def client(self, key: str, **options: Any) -> openai.OpenAI:
        """An SDK client for `key`; plain ones are reused so polling loops share connections."""
        plain = not options
        if plain and key in self._clients:
            return self._clients[key]
        # The SDK retries 5xx and 429 by default, which would hide the first answer.
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 30.0)
        client = openai.OpenAI(base_url=self.gateway.base_url, api_key=key, **options)
        if plain:
            self._clients[key] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    # -- the store -------------------------------------------------------------------------------

    def log_row(self, request_id: str, timeout_s: float = 2.0) -> dict[str, Any]:
        """The request's log row, once the writer's batch (every 50 ms) has committed it."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.engine.connect() as conn:
                row = (
                    conn.execute(select(request_logs).where(request_logs.c.request_id == request_id)).mappings().first()
                )
            if row is not None:
                return dict(row)
            if time.monotonic() > deadline:
                raise AssertionError(f"no log row for {request_id} after {timeout_s} s\n{self.server_output()}")
            time.sleep(0.02)

    def log_rows_for_key(self, key_id: int, count: int, timeout_s: float = 2.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(request_logs).where(request_logs.c.key_id == key_id).order_by(request_logs.c.id)
                ).mappings()
                found = [dict(r) for r in rows]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} log rows for key {key_id}, expected {count}")
            time.sleep(0.02)

    def balance(self, user: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(users_table.c.balance_nano).where(users_table.c.name == user)).scalar_one())

    # -- the upstream ------------------------------------------------------------------------------

    def upstream_requests_with(self, marker: str) -> list[RecordedRequest]:
        """What the fake upstream received whose body mentions `marker` (tests put a unique
        marker in their prompt, since one fake serves the whole module)."""
        assert self.fake is not None
        return [r for r in self.fake.requests if r.json is not None and marker in repr(r.json)]

    def server_output(self) -> str:
        """Drains the server's stdout/stderr (so its pipe never fills) and returns all of it."""
        if self.gateway.process is None:
            return ""
        return self.gateway.read_banner()


def unique(label: str) -> str:
    return f"{label}-{time.time_ns()}"


def _configure(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    engine = gateway.engine
    groups.create_group(engine, PRICED_GROUP, price_multiplier=MULTIPLIER)
    groups.create_group(engine, NARROW_GROUP, allowed_models=NARROW_MODELS)
    channels.create_channel(
        engine,
        gateway.box,
        CHANNEL,
        type="openai",
        base_url=fake.base_url,
        credential=UPSTREAM_KEY,
        models=[*CHAT_MODELS, EMBEDDING_MODEL, UNPRICED_MODEL],
        model_mapping={"alias-model": "fake-model"},
        groups=["default", PRICED_GROUP, NARROW_GROUP],
    )
    for model in [*CHAT_MODELS, ORPHAN_MODEL]:
        prices.set_price(engine, model, input_usd_per_mtok=INPUT_USD, output_usd_per_mtok=OUTPUT_USD)
    prices.set_price(engine, EMBEDDING_MODEL, input_usd_per_mtok="0.02")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def stage(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """`tollway serve` with one `openai` channel to the fake upstream, priced models, a group
    with a 1.5× multiplier and a group limited to two models."""
    with GatewayProcess(tmp_path_factory.mktemp("gateway")) as gateway:
        _configure(gateway, fake)
        gateway.start()
        stage = Stage(gateway, fake)
        yield stage
        stage.close()


@dataclass
class Demo:
    stage: Stage
    banner: str
    admin_token: str | None
    api_key: str | None


# Rich may wrap the key onto the next line of a narrow (or piped) console; the key itself stays whole.
DEMO_KEY = re.compile(r"Demo API key \(shown once[^)]*\):\s+(sk-[A-Za-z0-9_-]{20,})")


def start_demo(data_dir: Path) -> Demo:
    gateway = GatewayProcess(data_dir)
    try:
        gateway.start("--demo")
    except BaseException:
        gateway.close()
        raise
    banner = gateway.read_banner()
    match = DEMO_KEY.search(banner)
    return Demo(Stage(gateway, None), banner, gateway.admin_token, match.group(1) if match else None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`tollway serve --demo` on a fresh data directory: no upstream at all."""
    started = start_demo(tmp_path_factory.mktemp("demo"))
    try:
        yield started
    finally:
        started.stage.close()
        started.stage.gateway.close()
