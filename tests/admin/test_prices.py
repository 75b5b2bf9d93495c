from concurrent.futures import ThreadPoolExecutor

import orjson
from sqlalchemy import Engine

from tests.admin.expect import config_version, gateway_error
from tollway.admin import prices
from tollway.pipeline.errors import BAD_REQUEST, NOT_FOUND


def test_set_get_list_and_replace(engine: Engine) -> None:
    v0 = config_version(engine)
    price = prices.set_price(engine, "meta/llama-3", input_usd_per_mtok="0.15", output_usd_per_mtok="0.6")
    assert config_version(engine) == v0 + 1
    assert price == {
        "model": "meta/llama-3",
        "input_usd_per_mtok": "0.15",
        "output_usd_per_mtok": "0.6",
        "cached_input_usd_per_mtok": None,
        "per_request_usd": None,
        "input_nano_per_mtok": 150_000_000,
        "output_nano_per_mtok": 600_000_000,
        "cached_input_nano_per_mtok": None,
        "per_request_nano": None,
    }
    assert prices.get_price(engine, "meta/llama-3") == price
    assert orjson.loads(orjson.dumps(prices.list_prices(engine))) == [price]

    # Upsert: the same model again replaces every field.
    price = prices.set_price(
        engine,
        "meta/llama-3",
        input_usd_per_mtok="0.1",
        cached_input_usd_per_mtok="0.025",
        per_request_usd="0.000001",
    )
    assert config_version(engine) == v0 + 2
    assert (price["input_nano_per_mtok"], price["output_nano_per_mtok"]) == (100_000_000, 0)
    assert (price["cached_input_usd_per_mtok"], price["cached_input_nano_per_mtok"]) == ("0.025", 25_000_000)
    assert (price["per_request_usd"], price["per_request_nano"]) == ("0.000001", 1_000)
    prices.set_price(engine, "a-model")
    assert [p["model"] for p in prices.list_prices(engine)] == ["a-model", "meta/llama-3"]


def test_concurrent_set_of_a_new_model_does_not_collide(engine: Engine) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: prices.set_price(engine, "m", input_usd_per_mtok=str(i)), range(8)))
    [only] = prices.list_prices(engine)
    assert only["model"] == "m" and only["input_usd_per_mtok"] in {str(i) for i in range(8)}


def test_validation_and_delete(engine: Engine) -> None:
    with gateway_error(BAD_REQUEST, param="input_usd_per_mtok", match="must not be negative"):
        prices.set_price(engine, "m", input_usd_per_mtok="-1")
    with gateway_error(BAD_REQUEST, param="output_usd_per_mtok", match="9 decimal places"):
        prices.set_price(engine, "m", output_usd_per_mtok="0.0000000001")
    with gateway_error(BAD_REQUEST, param="per_request_usd"):
        prices.set_price(engine, "m", per_request_usd="free")
    with gateway_error(BAD_REQUEST, param="model"):
        prices.set_price(engine, "gpt 4o")
    with gateway_error(NOT_FOUND, param="model", match="tollway prices set gpt-5"):
        prices.get_price(engine, "gpt-5")
    prices.set_price(engine, "m")
    v0 = config_version(engine)
    prices.delete_price(engine, "m")
    assert config_version(engine) == v0 + 1
    assert prices.list_prices(engine) == []
    with gateway_error(NOT_FOUND, param="model"):
        prices.delete_price(engine, "m")
