import asyncio

import pytest
from sqlalchemy import Engine

from tollway.admin import keys, users
from tollway.billing import leases
from tollway.billing.ledger import Ledger
from tollway.pipeline.errors import GatewayError


async def test_reservations_never_exceed_the_balance_under_concurrency(engine: Engine) -> None:
    uid = users.create_user(engine, "u", balance_usd="0.000001")["id"]  # 1000 nano-USD
    kid = keys.create_key(engine, "u")["id"]
    ledger = Ledger(engine, holder="t", lease_ttl_s=60)

    async def one() -> bool:
        try:
            await ledger.reserve(user_id=uid, key_id=kid, key_limited=False, amount=300)
            return True
        except GatewayError as err:
            assert err.code == "insufficient_balance"
            return False

    results = await asyncio.gather(*(one() for _ in range(20)))
    assert results.count(True) == 3  # 3 × 300 ≤ 1000 < 4 × 300
    await ledger.release_all()


async def test_settle_frees_the_unused_hold_and_is_idempotent(engine: Engine) -> None:
    uid = users.create_user(engine, "u", balance_usd="0.000001")["id"]
    kid = keys.create_key(engine, "u")["id"]
    ledger = Ledger(engine, holder="t", lease_ttl_s=60)
    first = await ledger.reserve(user_id=uid, key_id=kid, key_limited=False, amount=600)
    with pytest.raises(GatewayError):
        await ledger.reserve(user_id=uid, key_id=kid, key_limited=False, amount=600)
    ledger.settle(first, 100)
    ledger.settle(first, 100)  # a second settle changes nothing
    ledger.refund(first)  # nor does a refund after settling
    second = await ledger.reserve(user_id=uid, key_id=kid, key_limited=False, amount=600)
    ledger.refund(second)
    account = first.accounts[0]
    assert (account.used, account.reserved) == (100, 0)
    await ledger.release_all()


async def test_key_limit_is_enforced_separately_from_the_balance(engine: Engine) -> None:
    uid = users.create_user(engine, "u", balance_usd="10")["id"]
    kid = keys.create_key(engine, "u", spend_limit_usd="0.0000005")["id"]  # 500 nano-USD
    ledger = Ledger(engine, holder="t", lease_ttl_s=60)
    held = await ledger.reserve(user_id=uid, key_id=kid, key_limited=True, amount=400)
    with pytest.raises(GatewayError) as caught:
        await ledger.reserve(user_id=uid, key_id=kid, key_limited=True, amount=400)
    assert caught.value.code == "key_limit_reached"
    assert held.lease_id(leases.KEY) is not None and held.lease_id(leases.USER) is not None
    await ledger.release_all()
    assert leases.available_nano(engine, leases.KEY, kid) == 500


async def test_idle_leases_are_handed_back(engine: Engine) -> None:
    uid = users.create_user(engine, "u", balance_usd="1")["id"]
    kid = keys.create_key(engine, "u")["id"]
    ledger = Ledger(engine, holder="t", lease_ttl_s=60, idle_release_s=0)
    held = await ledger.reserve(user_id=uid, key_id=kid, key_limited=False, amount=1000)
    assert leases.available_nano(engine, leases.USER, uid) < 1_000_000_000
    ledger.refund(held)
    await ledger.maintain()
    assert leases.available_nano(engine, leases.USER, uid) == 1_000_000_000
