import re

from tests.cli.conftest import Invoke


def test_create_list_delete(tollway: Invoke) -> None:
    created = tollway("admin-token", "create", "--name", "ops")
    assert created.exit_code == 0, created.output
    token = re.search(r"tw-admin-[A-Za-z0-9_-]+", created.output)
    assert token is not None and "shown once" in created.output
    listed = tollway("admin-token", "list")
    assert "ops" in listed.output and f"…{token.group(0)[-4:]}" in listed.output
    assert token.group(0) not in listed.output  # never shown again
    as_json = tollway("admin-token", "list", "--json")
    assert token.group(0) not in as_json.output
    assert tollway("admin-token", "delete", "1").exit_code == 0
    assert "no admin tokens" in tollway("admin-token", "list").output
    missing = tollway("admin-token", "delete", "1")
    assert missing.exit_code == 1 and "does not exist" in missing.output
