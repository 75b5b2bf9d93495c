from concurrent.futures import ThreadPoolExecutor

import orjson
from sqlalchemy import Engine, select

from tests.admin.expect import config_version, gateway_error
from tollway.admin import groups, users
from tollway.pipeline.errors import BAD_REQUEST, CONFLICT, NOT_FOUND, GatewayError
from tollway.store.tables import ledger_entries


def test_create_with_initial_balance_writes_a_topup_entry(engine: Engine) -> None:
    v0 = config_version(engine)
    bob = users.create_user(engine, "bob", balance_usd="5", email="bob@example.com")
    assert config_version(engine) == v0 + 1
    assert bob == users.get_user(engine, "bob")
    assert orjson.loads(orjson.dumps(bob)) == bob  # the REST API returns it as-is
    assert {k: bob[k] for k in ("name", "group", "role", "status", "email")} == {
        "name": "bob",
        "group": "default",
        "role": "user",
        "status": "active",
        "email": "bob@example.com",
    }
    assert (bob["balance_nano"], bob["balance_usd"]) == (5_000_000_000, "5")
    assert bob["created_at"].endswith("Z")
    [entry] = users.list_ledger(engine, "bob")
    assert entry["kind"] == "topup" and entry["amount_nano"] == 5_000_000_000 and entry["amount_usd"] == "5"
    assert entry["request_id"].startswith("op-")

    users.create_user(engine, "amy")  # zero balance: no ledger row
    assert users.list_ledger(engine, "amy") == []
    assert [u["name"] for u in users.list_users(engine)] == ["amy", "bob"]


def test_create_validation(sqlite_engine: Engine) -> None:
    users.create_user(sqlite_engine, "bob")
    groups.create_group(sqlite_engine, "staff")
    with gateway_error(NOT_FOUND, param="group") as info:
        users.create_user(sqlite_engine, "eve", group="vip")
    assert info.value.message_en == (
        "group `vip` does not exist; create it with `tollway groups add vip` or pick one of: default, staff"
    )
    with gateway_error(CONFLICT, param="name", match="user `bob` already exists"):
        users.create_user(sqlite_engine, "bob")
    with gateway_error(BAD_REQUEST, param="balance_usd", match="must not be negative"):
        users.create_user(sqlite_engine, "eve", balance_usd="-1")
    with gateway_error(BAD_REQUEST, param="balance_usd", match="9 decimal places"):
        users.create_user(sqlite_engine, "eve", balance_usd="0.0000000001")
    with gateway_error(BAD_REQUEST, param="balance_usd"):
        users.create_user(sqlite_engine, "eve", balance_usd="five")
    with gateway_error(BAD_REQUEST, param="role", match="user, admin"):
        users.create_user(sqlite_engine, "eve", role="root")
    with gateway_error(BAD_REQUEST, param="email"):
        users.create_user(sqlite_engine, "eve", email="not an email")
    with gateway_error(BAD_REQUEST, param="name"):
        users.create_user(sqlite_engine, "x" * 65)
    assert [u["name"] for u in users.list_users(sqlite_engine)] == ["bob"]


def test_update(engine: Engine) -> None:
    groups.create_group(engine, "vip")
    users.create_user(engine, "bob", email="bob@example.com")
    v0 = config_version(engine)
    bob = users.update_user(engine, "bob", status="disabled", group="vip", role="admin", email="")
    assert (bob["status"], bob["group"], bob["role"], bob["email"]) == ("disabled", "vip", "admin", None)
    assert config_version(engine) == v0 + 1
    with gateway_error(BAD_REQUEST, param="status", match="active, disabled"):
        users.update_user(engine, "bob", status="banned")
    with gateway_error(NOT_FOUND, param="group"):
        users.update_user(engine, "bob", group="gold")
    with gateway_error(NOT_FOUND, param="name", match="user `carl` does not exist"):
        users.update_user(engine, "carl", status="active")
    assert users.get_user(engine, "bob")["group"] == "vip"  # failed updates changed nothing
    assert config_version(engine) == v0 + 1


def test_adjust_balance_is_exact_and_refuses_overdraft(engine: Engine) -> None:
    users.create_user(engine, "bob")
    v0 = config_version(engine)
    bob = users.adjust_balance(engine, "bob", "0.000000001", note="one nano")
    assert (bob["balance_nano"], bob["balance_usd"]) == (1, "0.000000001")
    assert config_version(engine) == v0  # balances live outside the snapshot: no rebuild
    bob = users.adjust_balance(engine, "bob", "-0.000000001", note="and back")
    assert (bob["balance_nano"], bob["balance_usd"]) == (0, "0")
    with gateway_error(BAD_REQUEST, param="delta_usd", match="the balance is only 0 USD"):
        users.adjust_balance(engine, "bob", "-0.000000001")
    with gateway_error(BAD_REQUEST, param="delta_usd", match="must not be zero"):
        users.adjust_balance(engine, "bob", "0")
    with gateway_error(BAD_REQUEST, param="delta_usd"):
        users.adjust_balance(engine, "bob", "1.0000000001")
    with gateway_error(NOT_FOUND, param="name"):
        users.adjust_balance(engine, "nobody", "1")
    assert config_version(engine) == v0

    ledger = users.list_ledger(engine, "bob")
    assert [(e["kind"], e["amount_nano"], e["note"]) for e in ledger] == [
        ("adjust", -1, "and back"),
        ("topup", 1, "one nano"),
    ]
    assert len(users.list_ledger(engine, "bob", limit=1)) == 1
    with gateway_error(BAD_REQUEST, param="limit"):
        users.list_ledger(engine, "bob", limit=0)


def test_concurrent_topups_never_lose_an_update(engine: Engine) -> None:
    users.create_user(engine, "bob")
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda _: users.adjust_balance(engine, "bob", "0.1"), range(20)))
    bob = users.get_user(engine, "bob")
    assert (bob["balance_nano"], bob["balance_usd"]) == (2_000_000_000, "2")
    with engine.connect() as conn:
        amounts = conn.execute(select(ledger_entries.c.amount_nano)).scalars().all()
    assert amounts == [100_000_000] * 20


def test_concurrent_deductions_never_overdraw(engine: Engine) -> None:
    users.create_user(engine, "bob", balance_usd="1")

    def deduct(_: int) -> bool:
        try:
            users.adjust_balance(engine, "bob", "-0.3")
            return True
        except GatewayError:
            return False

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(deduct, range(10)))
    assert outcomes.count(True) == 3
    assert users.get_user(engine, "bob")["balance_usd"] == "0.1"
    assert sum(e["amount_nano"] for e in users.list_ledger(engine, "bob")) == 100_000_000
