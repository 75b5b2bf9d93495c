import orjson

from tests.cli.conftest import Invoke


def test_group_lifecycle(tollway: Invoke) -> None:
    result = tollway(
        "groups", "add", "vip", "--multiplier", "0.85", "--models", "gpt-4o, gpt-4o-mini", "--description", "VIPs"
    )
    assert result.exit_code == 0, result.output
    vip = orjson.loads(tollway("groups", "show", "vip", "--json").stdout)
    assert (vip["price_multiplier"], vip["allowed_models"], vip["description"]) == (
        "0.85",
        ["gpt-4o", "gpt-4o-mini"],
        "VIPs",
    )

    assert tollway("groups", "set", "vip", "--all-models", "--multiplier", "1.2").exit_code == 0
    listed = orjson.loads(tollway("groups", "list", "--json").stdout)
    assert [(g["name"], g["price_multiplier"], g["allowed_models"]) for g in listed] == [
        ("default", "1", None),
        ("vip", "1.2", None),
    ]
    table = tollway("groups", "list").stdout
    assert "vip" in table and "all" in table

    both = tollway("groups", "set", "vip", "--all-models", "--models", "a")
    assert both.exit_code == 1 and "either --models or --all-models" in both.stderr
    assert tollway("groups", "set", "vip", "--models", "a,b").exit_code == 0
    assert orjson.loads(tollway("groups", "show", "vip", "--json").stdout)["allowed_models"] == ["a", "b"]

    assert tollway("groups", "add", "vip").exit_code == 1
    default = tollway("groups", "remove", "default")
    assert default.exit_code == 1 and "cannot be deleted" in default.stderr
    assert tollway("groups", "remove", "vip").exit_code == 0
    assert tollway("groups", "show", "vip").exit_code == 1
