import orjson

from tests.cli.conftest import Invoke


def test_add_with_key_shows_the_key_once(tollway: Invoke) -> None:
    result = tollway("users", "add", "bob", "--balance", "5", "--email", "bob@example.com", "--with-key")
    assert result.exit_code == 0, result.output
    assert "Created user bob." in result.stdout
    [key_line] = [line for line in result.stdout.splitlines() if line.startswith("API key 1 ")]
    secret = key_line.rsplit(": ", 1)[1]
    assert secret.startswith("sk-") and len(secret) > 40
    assert "Store it now; it cannot be shown again." in result.stdout

    shown = tollway("users", "show", "bob", "--json")
    assert orjson.loads(shown.stdout)["balance_usd"] == "5"
    keys = tollway("keys", "list", "--user", "bob", "--json")
    [key] = orjson.loads(keys.stdout)
    assert key["name"] == "default" and key["masked"] == f"{secret[:7]}…{secret[-4:]}"
    assert secret not in keys.stdout


def test_balance_commands(tollway: Invoke) -> None:
    assert tollway("users", "add", "bob").exit_code == 0
    result = tollway("users", "topup", "bob", "0.000000001", "--note", "tiny")
    assert result.exit_code == 0 and "now $0.000000001" in result.stdout
    assert tollway("users", "deduct", "bob", "0.000000001").exit_code == 0

    refused = tollway("users", "deduct", "bob", "1")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: cannot deduct 1 USD from user `bob`: the balance is only 0 USD")
    signed = tollway("users", "topup", "bob", "+5")
    assert signed.exit_code == 1 and "without a sign" in signed.stderr
    assert tollway("users", "topup", "bob", "-5").exit_code == 2  # read as an unknown option

    ledger = orjson.loads(tollway("users", "ledger", "bob", "--json").stdout)
    assert [(e["kind"], e["amount_usd"], e["note"]) for e in ledger] == [
        ("adjust", "-0.000000001", ""),
        ("topup", "0.000000001", "tiny"),
    ]
    table = tollway("users", "ledger", "bob").stdout
    assert ledger[0]["request_id"] in table and "tiny" in table


def test_set_list_and_errors(tollway: Invoke) -> None:
    assert tollway("users", "add", "bob").exit_code == 0
    missing_group = tollway("users", "add", "eve", "--group", "vip")
    assert missing_group.exit_code == 1
    assert missing_group.stderr.strip() == (
        "error: group `vip` does not exist; create it with `tollway groups add vip` or pick one of: default"
    )
    assert tollway("groups", "add", "vip").exit_code == 0
    result = tollway("users", "set", "bob", "--status", "disabled", "--group", "vip", "--role", "admin")
    assert result.exit_code == 0, result.output
    [bob] = orjson.loads(tollway("users", "list", "--json").stdout)
    assert (bob["status"], bob["group"], bob["role"]) == ("disabled", "vip", "admin")
    listing = tollway("users", "list").stdout
    assert "bob" in listing and "disabled" in listing and "$0.00" in listing

    assert tollway("users", "show", "nobody").exit_code == 1
    assert tollway("users", "add").exit_code == 2  # usage error: Typer's own
