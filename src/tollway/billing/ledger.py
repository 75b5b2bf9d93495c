"""The in-process side of the ledger: reserve, settle and refund against leases, in memory.

Per account (a user, or a key with a spend limit) this process holds at most one lease and
tracks, in memory, what it has settled against it (`used`) and what requests in flight hold
(`reserved`). Only when a reservation does not fit does it go to the database, once, to grow
the lease. So the hot path makes no database round trip, and a request is admitted only if
its estimate fits: overspend is bounded by what in-flight requests cost beyond their estimate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine

from tollway.billing import leases
from tollway.billing.money import format_usd
from tollway.pipeline.errors import INSUFFICIENT_BALANCE, KEY_LIMIT_REACHED, GatewayError

LEASE_AHEAD_REQUESTS = 200


@dataclass(slots=True)
class Account:
    kind: str
    account_id: int
    lease_id: int | None = None
    granted: int = 0
    used: int = 0  # settled in memory (committed or still in the journal)
    reserved: int = 0  # held by requests in flight
    uncommitted: int = 0  # settlements not yet committed to the database
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def available(self) -> int:
        return self.granted - self.used - self.reserved


@dataclass(slots=True)
class Reservation:
    amount: int
    accounts: tuple[Account, ...]
    settled: bool = False

    def lease_id(self, kind: str) -> int | None:
        for account in self.accounts:
            if account.kind == kind:
                return account.lease_id
        return None


class Ledger:
    def __init__(self, engine: Engine, *, holder: str, lease_ttl_s: float, idle_release_s: float = 5.0) -> None:
        self._engine = engine
        self._holder = holder
        self._ttl_ms = int(lease_ttl_s * 1000)
        self._idle_release_s = idle_release_s
        self._accounts: dict[tuple[str, int], Account] = {}

    def _account(self, kind: str, account_id: int) -> Account:
        account = self._accounts.get((kind, account_id))
        if account is None:
            account = self._accounts[(kind, account_id)] = Account(kind, account_id)
        return account

    async def reserve(self, *, user_id: int, key_id: int, key_limited: bool, amount: int) -> Reservation:
        accounts = [self._account(leases.USER, user_id)]
        if key_limited:
            accounts.append(self._account(leases.KEY, key_id))
        # Top-ups await the database, so another request may take the money meanwhile: re-check.
        for _ in range(4):
            short = [a for a in accounts if a.available < amount]
            if not short:
                for account in accounts:
                    account.reserved += amount
                    account.last_used = time.monotonic()
                return Reservation(amount=amount, accounts=tuple(accounts))
            for account in short:
                await self._grow(account, amount)
        raise _exhausted(accounts[-1] if len(accounts) > 1 and accounts[-1].available < amount else accounts[0], amount)

    async def _grow(self, account: Account, amount: int) -> None:
        async with account.lock:
            if account.available >= amount:
                return
            need = amount - account.available
            # Lease well ahead (200 requests' worth) so most reservations stay in memory; the
            # database grants less when less is available, and idle leases are handed back.
            grant = await asyncio.to_thread(
                leases.acquire,
                self._engine,
                holder=self._holder,
                kind=account.kind,
                account_id=account.account_id,
                need_nano=need,
                want_nano=need + amount * LEASE_AHEAD_REQUESTS,
                ttl_ms=self._ttl_ms,
                lease_id=account.lease_id,
            )
            if grant is None:
                raise _exhausted(account, amount)
            if grant.lease_id != account.lease_id:
                # The old lease was released under us (or never existed): start over on the new one.
                account.lease_id, account.granted, account.used = grant.lease_id, 0, 0
            account.granted += grant.granted_nano

    def settle(self, reservation: Reservation, cost: int) -> None:
        """Turn the hold into the real cost. Idempotent: a second call does nothing."""
        if reservation.settled:
            return
        reservation.settled = True
        for account in reservation.accounts:
            account.reserved -= reservation.amount
            account.used += cost
            account.uncommitted += 1

    def refund(self, reservation: Reservation) -> None:
        """Give the whole hold back (the request failed and nothing was billed)."""
        if reservation.settled:
            return
        reservation.settled = True
        for account in reservation.accounts:
            account.reserved -= reservation.amount

    def committed(self, reservation_accounts: tuple[Account, ...]) -> None:
        for account in reservation_accounts:
            account.uncommitted -= 1

    async def maintain(self) -> None:
        """Renew leases in use; hand back idle ones whose settlements are all committed."""
        now = time.monotonic()
        idle = [
            a
            for a in self._accounts.values()
            if a.reserved == 0
            and a.uncommitted == 0
            and now - a.last_used > self._idle_release_s
            and not a.lock.locked()
        ]
        for account in idle:
            del self._accounts[(account.kind, account.account_id)]
        await asyncio.to_thread(leases.release, self._engine, [a.lease_id for a in idle if a.lease_id is not None])
        active = [a.lease_id for a in self._accounts.values() if a.lease_id is not None]
        await asyncio.to_thread(leases.renew, self._engine, active, self._ttl_ms)

    async def run_maintenance(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.maintain()
            except Exception:  # keep serving; the next round retries
                logging.getLogger("tollway.ledger").exception("lease maintenance failed")

    async def release_all(self) -> None:
        ids = [a.lease_id for a in self._accounts.values() if a.lease_id is not None]
        self._accounts.clear()
        await asyncio.to_thread(leases.release, self._engine, ids)


def _exhausted(account: Account, amount: int) -> GatewayError:
    if account.kind == leases.KEY:
        return GatewayError(
            KEY_LIMIT_REACHED,
            f"this API key has reached its spending limit (this request needs up to {format_usd(amount)}); "
            "ask the key's owner to raise the limit or use another key",
            f"此 API 密钥已达到消费上限（本次请求最多需要 {format_usd(amount)}）；请联系密钥所有者提高上限或换用其他密钥",
        )
    return GatewayError(
        INSUFFICIENT_BALANCE,
        f"insufficient balance: this request needs up to {format_usd(amount)} held in advance; "
        "top up the account or lower max_tokens",
        f"余额不足：本次请求需要预留最多 {format_usd(amount)}；请充值或调低 max_tokens",
    )
