from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, select, update

from tollway.admin import keys, users
from tollway.billing import leases
from tollway.billing.settlement import commit_records
from tollway.store.tables import leases as leases_table

NANO = 1_000_000_000


def _user(engine: Engine, balance: str = "1") -> int:
    return users.create_user(engine, "alice", balance_usd=balance)["id"]


def test_grant_is_capped_by_what_is_available(engine: Engine) -> None:
    uid = _user(engine, "1")
    grant = leases.acquire(
        engine,
        holder="h1",
        kind=leases.USER,
        account_id=uid,
        need_nano=10,
        want_nano=5 * NANO,
        ttl_ms=60_000,
        lease_id=None,
    )
    assert grant is not None and grant.granted_nano == NANO
    # Everything is leased now: a second holder cannot get even one nano-USD.
    assert (
        leases.acquire(
            engine,
            holder="h2",
            kind=leases.USER,
            account_id=uid,
            need_nano=1,
            want_nano=10,
            ttl_ms=60_000,
            lease_id=None,
        )
        is None
    )
    assert leases.available_nano(engine, leases.USER, uid) == 0


def test_growing_a_lease_keeps_one_row(engine: Engine) -> None:
    uid = _user(engine, "1")
    first = leases.acquire(
        engine, holder="h", kind=leases.USER, account_id=uid, need_nano=100, want_nano=100, ttl_ms=60_000, lease_id=None
    )
    assert first is not None
    again = leases.acquire(
        engine,
        holder="h",
        kind=leases.USER,
        account_id=uid,
        need_nano=50,
        want_nano=50,
        ttl_ms=60_000,
        lease_id=first.lease_id,
    )
    assert again is not None and again.lease_id == first.lease_id
    with engine.connect() as conn:
        rows = conn.execute(select(leases_table.c.granted_nano)).scalars().all()
    assert rows == [150]


def test_concurrent_holders_never_lease_more_than_the_balance(engine: Engine) -> None:
    """Twenty processes' worth of threads race for a 1 USD balance in 0.3 USD slices."""
    uid = _user(engine, "1")

    def grab(i: int) -> int:
        grant = leases.acquire(
            engine,
            holder=f"h{i}",
            kind=leases.USER,
            account_id=uid,
            need_nano=NANO // 10,
            want_nano=3 * NANO // 10,
            ttl_ms=60_000,
            lease_id=None,
        )
        return 0 if grant is None else grant.granted_nano

    with ThreadPoolExecutor(8) as pool:
        granted = list(pool.map(grab, range(20)))
    assert sum(granted) == NANO
    assert all(g == 0 or g >= NANO // 10 for g in granted)


def test_expired_and_released_leases_hold_nothing(engine: Engine) -> None:
    uid = _user(engine, "1")
    grant = leases.acquire(
        engine,
        holder="dead",
        kind=leases.USER,
        account_id=uid,
        need_nano=NANO,
        want_nano=NANO,
        ttl_ms=60_000,
        lease_id=None,
    )
    assert grant is not None
    assert leases.available_nano(engine, leases.USER, uid) == 0
    with engine.begin() as conn:  # the holder died a minute ago
        conn.execute(update(leases_table).values(expires_at_ms=0))
    assert leases.available_nano(engine, leases.USER, uid) == NANO
    other = leases.acquire(
        engine,
        holder="h2",
        kind=leases.USER,
        account_id=uid,
        need_nano=NANO,
        want_nano=NANO,
        ttl_ms=60_000,
        lease_id=None,
    )
    assert other is not None
    assert leases.release_holder(engine, "h2") == 1
    assert leases.available_nano(engine, leases.USER, uid) == NANO


def test_committed_usage_moves_from_lease_to_balance_without_double_counting(engine: Engine) -> None:
    uid = _user(engine, "1")
    grant = leases.acquire(
        engine,
        holder="h",
        kind=leases.USER,
        account_id=uid,
        need_nano=NANO // 2,
        want_nano=NANO // 2,
        ttl_ms=60_000,
        lease_id=None,
    )
    assert grant is not None
    assert leases.available_nano(engine, leases.USER, uid) == NANO // 2
    record = {
        "log": {
            "request_id": "req_1",
            "created_at_ms": 1,
            "endpoint": "/v1/chat/completions",
            "inbound_format": "openai",
            "requested_model": "m",
            "status_code": 200,
            "cost_nano": 1000,
            "charged": True,
        },
        "charge": {
            "user_id": uid,
            "key_id": None,
            "amount_nano": 1000,
            "user_lease_id": grant.lease_id,
            "key_lease_id": None,
        },
    }
    commit_records(engine, [record])
    # Balance fell by 1000 and the lease's remaining hold fell by 1000: availability unchanged.
    assert leases.available_nano(engine, leases.USER, uid) == NANO // 2
    assert users.get_user(engine, "alice")["balance_nano"] == NANO - 1000


def test_key_capacity_is_limit_minus_spent(engine: Engine) -> None:
    _user(engine, "5")
    key = keys.create_key(engine, "alice", spend_limit_usd="0.5")
    assert leases.available_nano(engine, leases.KEY, key["id"]) == NANO // 2
    grant = leases.acquire(
        engine,
        holder="h",
        kind=leases.KEY,
        account_id=key["id"],
        need_nano=1,
        want_nano=NANO,
        ttl_ms=60_000,
        lease_id=None,
    )
    assert grant is not None and grant.granted_nano == NANO // 2
