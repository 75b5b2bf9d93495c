"""The money guarantees of DESIGN.md, shown against a real server process on SQLite and
PostgreSQL: no lost charge after SIGKILL, and no overspend beyond what was in flight."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from sqlalchemy import func, select

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import GatewayProcess
from tollway.admin import channels, keys, prices, users
from tollway.billing.prices import cost_nano, estimate_nano
from tollway.snapshot.model import PriceView
from tollway.store.tables import leases, ledger_entries, request_logs
from tollway.wire.usage import Usage

INPUT_NANO, OUTPUT_NANO = 1_000_000_000, 2_000_000_000  # 1 and 2 USD per 1M tokens
PRICE = PriceView("m", INPUT_NANO, OUTPUT_NANO, None, None)
MODELS = ["fake-model", "slow-300-bigusage-100-fake", "fail-500-fake"]


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


def _configure(gw: GatewayProcess, fake: FakeUpstream, *, balance: str, key_limit: str | None = None) -> str:
    channels.create_channel(
        gw.engine, gw.box, "fake", type="openai", base_url=fake.base_url, credential="upstream-secret", models=MODELS
    )
    for model in MODELS:
        prices.set_price(gw.engine, model, input_usd_per_mtok="1", output_usd_per_mtok="2")
    users.create_user(gw.engine, "payer", balance_usd=balance)
    return keys.create_key(gw.engine, "payer", spend_limit_usd=key_limit)["key"]


def _count(gw: GatewayProcess, table) -> int:  # type: ignore[no-untyped-def]
    with gw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


async def _post(session: aiohttp.ClientSession, url: str, key: str, body: bytes) -> tuple[int, bytes]:
    async with session.post(
        url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ) as response:
        return response.status, await response.read()


def _body(model: str, *, stream: bool = False) -> bytes:
    return orjson.dumps(
        {
            "model": model,
            "max_tokens": 5,
            "stream": stream,
            "messages": [{"role": "user", "content": "What does a toll road cost?"}],
        }
    )


def test_sigkill_right_after_answering_loses_no_charge(tmp_path: Path, database_url: str, fake: FakeUpstream) -> None:
    # Commits are held back for a minute, so everything below lives only in the journal when the
    # process dies: the restart must recover it.
    gw = GatewayProcess(tmp_path / "data", database_url=database_url, extra_env={"TOLLWAY_LOG_FLUSH_INTERVAL_S": "60"})
    key = _configure(gw, fake, balance="1")
    gw.start()

    async def traffic() -> list[int]:
        async with aiohttp.ClientSession() as session:
            url = f"{gw.base_url}/chat/completions"
            return [
                (await _post(session, url, key, body))[0]
                for body in (
                    _body("fake-model"),
                    _body("fake-model", stream=True),
                    _body("fake-model"),
                    _body("fake-model", stream=True),
                    _body("fail-500-fake"),
                )
            ]

    statuses = asyncio.run(traffic())
    gw.kill()
    assert statuses == [200, 200, 200, 200, 502]
    assert _count(gw, request_logs) == 0, "nothing should have been committed before the kill"

    gw.start()  # same data dir: replays the journal before serving
    try:
        assert _count(gw, request_logs) == 5
        assert _count(gw, ledger_entries) == 1 + 4  # the initial top-up and four charges
        one = cost_nano(PRICE, Usage(prompt_tokens=10, completion_tokens=5), 1_000_000)
        assert users.get_user(gw.engine, "payer")["balance_nano"] == 1_000_000_000 - 4 * one
        assert not list((tmp_path / "data" / "journal").glob("*.jsonl")), "replayed segments are removed"
    finally:
        gw.close()


def _spend_race(tmp_path: Path, database_url: str, fake: FakeUpstream, model: str, *, workers: int) -> dict[str, int]:
    """40 identical requests at once against a key limited to 0.0002 USD."""
    gw = GatewayProcess(tmp_path / "data", database_url=database_url)
    key = _configure(gw, fake, balance="10", key_limit="0.0002")
    gw.start("--workers", str(workers))
    body = _body(model)

    async def race() -> list[tuple[int, bytes]]:
        async with aiohttp.ClientSession() as session:
            url = f"{gw.base_url}/chat/completions"
            return await asyncio.gather(*(_post(session, url, key, body) for _ in range(40)))

    try:
        results = asyncio.run(race())
        deadline = time.monotonic() + 5
        while _count(gw, request_logs) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(gw, request_logs) == 40, "every request, admitted or not, has its log row"
        key_row = keys.list_keys(gw.engine, user="payer")[0]
        refused = [orjson.loads(b)["error"]["code"] for s, b in results if s != 200]
        assert set(refused) <= {"key_limit_reached"}
        return {
            "ok": sum(1 for s, _ in results if s == 200),
            "spent": key_row["spent_nano"],
            "limit": key_row["spend_limit_nano"],
            "charges": _count(gw, ledger_entries) - 1,
            "estimate": estimate_nano(PRICE, len(body) // 3 + 8, 5, 1_000_000),
        }
    finally:
        gw.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_no_overspend_when_estimates_cover_the_cost(
    tmp_path: Path, database_url: str, fake: FakeUpstream, workers: int
) -> None:
    if workers > 1 and database_url.startswith("sqlite"):
        pytest.skip("several workers are exercised on PostgreSQL")
    seen = _spend_race(tmp_path, database_url, fake, "fake-model", workers=workers)
    actual = cost_nano(PRICE, Usage(prompt_tokens=10, completion_tokens=5), 1_000_000)
    assert seen["estimate"] >= actual
    assert 1 <= seen["ok"] < 40
    assert seen["charges"] == seen["ok"] and seen["spent"] == seen["ok"] * actual
    assert seen["spent"] <= seen["limit"]  # the bound: no overspend at all


@pytest.mark.parametrize("workers", [1, 2])
def test_overspend_is_bounded_by_what_was_in_flight(
    tmp_path: Path, database_url: str, fake: FakeUpstream, workers: int
) -> None:
    """The upstream reports 100 completion tokens although max_tokens was 5, so each admitted
    request costs more than its hold. Admission still stops once holds reach the limit; the
    overrun is at most (requests in flight) × (cost − hold)."""
    if workers > 1 and database_url.startswith("sqlite"):
        pytest.skip("several workers are exercised on PostgreSQL")
    seen = _spend_race(tmp_path, database_url, fake, "slow-300-bigusage-100-fake", workers=workers)
    actual = cost_nano(PRICE, Usage(prompt_tokens=10, completion_tokens=100), 1_000_000)
    hold = seen["estimate"]
    assert actual > hold
    in_flight_max = seen["limit"] // hold  # holds admitted before the first answer came back
    assert 1 <= seen["ok"] <= in_flight_max
    assert seen["spent"] == seen["ok"] * actual
    assert seen["spent"] - seen["limit"] <= in_flight_max * (actual - hold)


@pytest.mark.parametrize(("stop_signal", "workers"), [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 2)])
def test_graceful_stop_commits_everything_and_hands_leases_back(
    tmp_path: Path, database_url: str, fake: FakeUpstream, stop_signal: signal.Signals, workers: int
) -> None:
    if workers > 1 and database_url.startswith("sqlite"):
        pytest.skip("several workers are exercised on PostgreSQL")
    gw = GatewayProcess(tmp_path / "data", database_url=database_url, extra_env={"TOLLWAY_LOG_FLUSH_INTERVAL_S": "60"})
    key = _configure(gw, fake, balance="1")
    gw.start("--workers", str(workers))

    async def traffic() -> list[int]:
        async with aiohttp.ClientSession() as session:
            url = f"{gw.base_url}/chat/completions"
            return [(await _post(session, url, key, _body("fake-model", stream=s)))[0] for s in (False, True, False)]

    assert asyncio.run(traffic()) == [200, 200, 200]
    assert _count(gw, request_logs) == 0  # still batched in memory and in the journal
    assert gw.process is not None
    gw.process.send_signal(stop_signal)
    assert gw.process.wait(timeout=20) == 0
    try:
        assert _count(gw, request_logs) == 3 and _count(gw, ledger_entries) == 1 + 3
        with gw.engine.connect() as conn:
            held = conn.execute(
                select(func.count()).select_from(leases).where(leases.c.released.is_(False))
            ).scalar_one()
        assert held == 0
        assert not list((tmp_path / "data" / "journal").glob("*.jsonl"))
    finally:
        gw.close()
