from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, select, update

from tollway.admin import keys, users
from tollway.billing import leases
from tollway.billing.settlement import commit_records
from tollway.store.tables import leases as leases_table

NANO = 1_000_000_000


def _user(engine: Engine, balance: str = "1") -> int:
    return users.create_user(engine, "alice", balance_usd=balance)["id"]


def _acquire(
    engine: Engine,
    holder: str,
    account_id: int,
    need: int,
    want: int,
    *,
    kind: str = leases.USER,
    lease_id: int | None = None,
) -> leases.Grant | None:
    return leases.acquire(
        engine,
        holder=holder,
        kind=kind,
        account_id=account_id,
        need_nano=need,
        want_nano=want,
        ttl_ms=60_000,
        lease_id=lease_id,
    )


def test_grant_is_capped_by_half_of_what_is_available(engine: Engine) -> None:
    uid = _user(engine, "1")
    # A node asking for more than there is gets half, so another node can still serve the account.
    first = _acquire(engine, "h1", uid, 10, 5 * NANO)
    assert first is not None and first.granted_nano == NANO // 2
    second = _acquire(engine, "h2", uid, 10, 5 * NANO)
    assert second is not None and second.granted_nano == NANO // 4
    # What a request needs is granted in full, above the half, when it is there.
    third = _acquire(engine, "h3", uid, NANO // 4, NANO // 4)
    assert third is not None and third.granted_nano == NANO // 4
    # Everything is leased now: a fourth holder cannot get even one nano-USD.
    assert _acquire(engine, "h4", uid, 1, 10) is None
    assert leases.available_nano(engine, leases.USER, uid) == 0


def test_growing_a_lease_keeps_one_row(engine: Engine) -> None:
    uid = _user(engine, "1")
    first = _acquire(engine, "h", uid, 100, 100)
    assert first is not None
    again = _acquire(engine, "h", uid, 50, 50, lease_id=first.lease_id)
    assert again is not None and again.lease_id == first.lease_id
    with engine.connect() as conn:
        assert conn.execute(select(leases_table.c.granted_nano)).scalars().all() == [150]


def test_concurrent_holders_never_lease_more_than_the_balance(engine: Engine) -> None:
    """Twenty processes' worth of threads race for a 1 USD balance in 0.1–0.3 USD slices."""
    uid = _user(engine, "1")

    def grab(i: int) -> int:
        grant = _acquire(engine, f"h{i}", uid, NANO // 10, 3 * NANO // 10)
        return 0 if grant is None else grant.granted_nano

    with ThreadPoolExecutor(8) as pool:
        granted = list(pool.map(grab, range(20)))
    assert sum(granted) == NANO
    assert all(g == 0 or g >= NANO // 10 for g in granted)


def test_expired_and_released_leases_hold_nothing(engine: Engine) -> None:
    uid = _user(engine, "1")
    assert _acquire(engine, "dead", uid, NANO, NANO) is not None
    assert leases.available_nano(engine, leases.USER, uid) == 0
    with engine.begin() as conn:  # the holder died a minute ago
        conn.execute(update(leases_table).values(expires_at_ms=0))
    assert leases.available_nano(engine, leases.USER, uid) == NANO
    assert _acquire(engine, "h2", uid, NANO, NANO) is not None
    assert leases.release_holder(engine, "h2") == 1
    assert leases.available_nano(engine, leases.USER, uid) == NANO


def test_committed_usage_moves_from_lease_to_balance_without_double_counting(engine: Engine) -> None:
    uid = _user(engine, "1")
    grant = _acquire(engine, "h", uid, NANO // 2, NANO // 2)
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
    grant = _acquire(engine, "h", key["id"], 1, NANO, kind=leases.KEY)
    assert grant is not None and grant.granted_nano == NANO // 4  # half of the 0.5 left
