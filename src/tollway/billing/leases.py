"""Leases: a process holds a slice of an account's spendable money so it can reserve from it
in memory, with one atomic database statement per slice instead of one per request.

An account is a user (capacity = committed balance) or a key with a spend limit
(capacity = limit - spent). Money available to new leases is the capacity minus what active
leases still hold (granted - used). Settlements committed later raise `used` and lower the
capacity by the same amount in one transaction, so availability never double counts.
A lease that is released, or that expired because its process died, holds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, and_, case, func, insert, select, update
from sqlalchemy.engine import Connection

from tollway.store.db import now_ms
from tollway.store.tables import api_keys, leases, users

USER = "user"
KEY = "key"


@dataclass(frozen=True, slots=True)
class Grant:
    lease_id: int
    granted_nano: int  # how much was added by this call


def _capacity(conn: Connection, kind: str, account_id: int, lock: bool) -> int | None:
    if kind == USER:
        query = select(users.c.balance_nano).where(users.c.id == account_id)
    else:
        query = select(api_keys.c.spend_limit_nano - api_keys.c.spent_nano).where(api_keys.c.id == account_id)
    if lock:
        query = query.with_for_update()
    value = conn.execute(query).scalar_one_or_none()
    return None if value is None else int(value)


def _outstanding(conn: Connection, kind: str, account_id: int, at_ms: int) -> int:
    remaining = case((leases.c.granted_nano > leases.c.used_nano, leases.c.granted_nano - leases.c.used_nano), else_=0)
    query = select(func.coalesce(func.sum(remaining), 0)).where(
        and_(
            leases.c.account_kind == kind,
            leases.c.account_id == account_id,
            leases.c.released.is_(False),
            leases.c.expires_at_ms > at_ms,
        )
    )
    return int(conn.execute(query).scalar_one())


def available_nano(engine: Engine, kind: str, account_id: int) -> int:
    with engine.connect() as conn:
        capacity = _capacity(conn, kind, account_id, lock=False) or 0
        return capacity - _outstanding(conn, kind, account_id, now_ms())


def acquire(
    engine: Engine,
    *,
    holder: str,
    kind: str,
    account_id: int,
    need_nano: int,
    want_nano: int,
    ttl_ms: int,
    lease_id: int | None,
) -> Grant | None:
    """Grow `lease_id` (or open a new lease) by at least `need_nano` and at most `want_nano`,
    and never more than half of what is left unless `need_nano` itself asks for more: so when
    several nodes serve one account, one of them cannot take it all while the others refuse its
    requests. None when the account cannot cover `need_nano`. The account row is locked for the
    transaction (FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite), so two processes cannot
    both be granted the same money."""
    with engine.begin() as conn:
        at = now_ms()
        capacity = _capacity(conn, kind, account_id, lock=True)
        if capacity is None:
            return None
        available = capacity - _outstanding(conn, kind, account_id, at)
        if available < need_nano or (need_nano <= 0 and available <= 0):
            return None
        grant = max(need_nano, min(want_nano, available // 2))
        if lease_id is not None:
            moved = conn.execute(
                update(leases)
                .where(and_(leases.c.id == lease_id, leases.c.released.is_(False)))
                .values(granted_nano=leases.c.granted_nano + grant, expires_at_ms=at + ttl_ms)
            ).rowcount
            if moved == 1:
                return Grant(lease_id=lease_id, granted_nano=grant)
        new_id = conn.execute(
            insert(leases)
            .values(
                holder=holder,
                account_kind=kind,
                account_id=account_id,
                granted_nano=grant,
                used_nano=0,
                expires_at_ms=at + ttl_ms,
                released=False,
            )
            .returning(leases.c.id)
        ).scalar_one()
        return Grant(lease_id=int(new_id), granted_nano=grant)


def renew(engine: Engine, lease_ids: list[int], ttl_ms: int) -> None:
    if not lease_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(leases)
            .where(and_(leases.c.id.in_(lease_ids), leases.c.released.is_(False)))
            .values(expires_at_ms=now_ms() + ttl_ms)
        )


def release(engine: Engine, lease_ids: list[int]) -> None:
    if not lease_ids:
        return
    with engine.begin() as conn:
        conn.execute(update(leases).where(leases.c.id.in_(lease_ids)).values(released=True))


def release_holder(engine: Engine, holder: str) -> int:
    """On start, after the journal was replayed: whatever this holder leased before a crash
    is no longer in flight."""
    with engine.begin() as conn:
        return conn.execute(
            update(leases).where(and_(leases.c.holder == holder, leases.c.released.is_(False))).values(released=True)
        ).rowcount
