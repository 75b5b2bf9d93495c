import orjson

from tests.cli.conftest import Invoke


def test_key_lifecycle(tollway: Invoke) -> None:
    assert tollway("users", "add", "bob").exit_code == 0
    created = tollway(
        "keys", "create", "--user", "bob", "--name", "ci", "--limit", "2.5", "--expires", "2099-01-01",
        "--models", "gpt-4o", "--ips", "10.0.0.0/8,1.2.3.4", "--env", "test", "--project", "search",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    [key_line] = [line for line in created.stdout.splitlines() if line.startswith("API key 1: ")]
    secret = key_line.split(": ", 1)[1]
    assert "it cannot be shown again" in created.stdout

    key = orjson.loads(tollway("keys", "show", "1", "--json").stdout)
    assert "key" not in key
    assert (key["name"], key["spend_limit_usd"], key["expires_at"], key["allowed_ips"]) == (
        "ci",
        "2.5",
        "2099-01-01T00:00:00Z",
        ["10.0.0.0/8", "1.2.3.4/32"],
    )
    listing = tollway("keys", "list")
    assert key["masked"] in listing.stdout and secret not in listing.stdout

    cleared = tollway("keys", "set", "1", "--unlimited", "--no-expiry", "--any-ip", "--all-models", "--no-project")
    assert cleared.exit_code == 0, cleared.output
    key = orjson.loads(tollway("keys", "show", "1", "--json").stdout)
    assert [key[f] for f in ("spend_limit_usd", "expires_at", "allowed_ips", "allowed_models", "project")] == [None] * 5

    assert tollway("keys", "disable", "1").exit_code == 0
    assert orjson.loads(tollway("keys", "show", "1", "--json").stdout)["status"] == "disabled"
    assert tollway("keys", "enable", "1").exit_code == 0
    assert orjson.loads(tollway("keys", "list", "--json").stdout)[0]["status"] == "active"

    both = tollway("keys", "set", "1", "--limit", "1", "--unlimited")
    assert both.exit_code == 1 and "either --limit or --unlimited" in both.stderr
    bad_ip = tollway("keys", "create", "--user", "bob", "--ips", "300.1.1.1")
    assert bad_ip.exit_code == 1 and "`300.1.1.1`" in bad_ip.stderr

    assert tollway("keys", "delete", "1").exit_code == 0
    gone = tollway("keys", "show", "1")
    assert gone.exit_code == 1 and "key 1 does not exist" in gone.stderr
    assert tollway("keys", "show", "one").exit_code == 2
