import orjson

from tests.cli.conftest import Invoke


def test_price_lifecycle(tollway: Invoke) -> None:
    assert tollway("prices", "set", "meta/llama-3", "--input", "0.15", "--output", "0.6").exit_code == 0
    # Options left out keep the current value of an already priced model.
    assert tollway("prices", "set", "meta/llama-3", "--cached-input", "0.05").exit_code == 0
    price = orjson.loads(tollway("prices", "show", "meta/llama-3", "--json").stdout)
    assert (price["input_usd_per_mtok"], price["output_usd_per_mtok"], price["cached_input_usd_per_mtok"]) == (
        "0.15",
        "0.6",
        "0.05",
    )
    assert tollway("prices", "set", "meta/llama-3", "--per-request", "0.01", "--clear-cached-input").exit_code == 0
    [price] = orjson.loads(tollway("prices", "list", "--json").stdout)
    assert (price["cached_input_usd_per_mtok"], price["per_request_usd"], price["per_request_nano"]) == (
        None,
        "0.01",
        10_000_000,
    )
    assert "meta/llama-3" in tollway("prices", "list").stdout

    bad = tollway("prices", "set", "m", "--input", "0.0000000001")
    assert bad.exit_code == 1 and "9 decimal places" in bad.stderr
    assert tollway("prices", "remove", "meta/llama-3").exit_code == 0
    missing = tollway("prices", "remove", "meta/llama-3")
    assert missing.exit_code == 1 and "has no price" in missing.stderr
