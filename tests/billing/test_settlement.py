from sqlalchemy import Engine, func, select

from tollway.admin import keys, users
from tollway.billing.settlement import commit_records
from tollway.store.tables import ledger_entries, request_logs


def _record(rid: str, uid: int, kid: int | None, amount: int | None) -> dict:
    log = {
        "request_id": rid,
        "created_at_ms": 1,
        "endpoint": "/v1/chat/completions",
        "inbound_format": "openai",
        "requested_model": "m",
        "status_code": 200 if amount else 502,
        "cost_nano": amount or 0,
        "charged": bool(amount),
        "user_id": uid,
        "key_id": kid,
    }
    charge = (
        None
        if not amount
        else {"user_id": uid, "key_id": kid, "amount_nano": amount, "user_lease_id": None, "key_lease_id": None}
    )
    return {"log": log, "charge": charge}


def test_log_rows_and_charges_commit_together_and_only_once(engine: Engine) -> None:
    uid = users.create_user(engine, "bob", balance_usd="1")["id"]
    kid = keys.create_key(engine, "bob", spend_limit_usd="1")["id"]
    batch = [_record("r1", uid, kid, 700), _record("r2", uid, kid, None), _record("r3", uid, kid, 300)]
    assert commit_records(engine, batch) == 3
    # A journal replayed after a crash repeats the batch, and a duplicate inside one batch too.
    assert commit_records(engine, [*batch, batch[0]]) == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(request_logs)).scalar_one() == 3
        charges = conn.execute(select(ledger_entries.c.amount_nano).where(ledger_entries.c.kind == "charge")).scalars()
        assert sorted(charges) == [-700, -300]
    assert users.get_user(engine, "bob")["balance_nano"] == 1_000_000_000 - 1000
    assert keys.get_key(engine, kid)["spent_nano"] == 1000
