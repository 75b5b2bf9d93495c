from __future__ import annotations

import pytest

from tollway.billing.money import usd_to_nano
from tollway.billing.prices import cost_nano, estimate_nano
from tollway.snapshot.model import PriceView
from tollway.wire.usage import ESTIMATED, Usage

ONE = 1_000_000  # multiplier 1.0 in ppm


def price(
    input_usd: str, output_usd: str, cached_usd: str | None = None, per_request_usd: str | None = None
) -> PriceView:
    return PriceView(
        model="m",
        input_nano_per_mtok=usd_to_nano(input_usd),
        output_nano_per_mtok=usd_to_nano(output_usd),
        cached_input_nano_per_mtok=None if cached_usd is None else usd_to_nano(cached_usd),
        per_request_nano=None if per_request_usd is None else usd_to_nano(per_request_usd),
    )


GPT_4O = price("2.5", "10", cached_usd="1.25")


def test_plain_token_cost() -> None:
    # 1000 in × $2.50/M + 500 out × $10/M = $0.0025 + $0.005
    assert cost_nano(GPT_4O, Usage(1000, 500), ONE) == 7_500_000


def test_cached_tokens_use_the_cached_price() -> None:
    usage = Usage(prompt_tokens=2006, completion_tokens=300, cached_tokens=1920)
    # 86 × 2.5 + 1920 × 1.25 + 300 × 10 = 215 + 2400 + 3000 = 5615 (nano-USD per 1M → ×1000 / 1M)
    assert cost_nano(GPT_4O, usage, ONE) == 5_615_000


def test_cached_tokens_without_a_cached_price_cost_the_input_price() -> None:
    plain = price("2.5", "10")
    assert cost_nano(plain, Usage(2006, 300, 1920), ONE) == cost_nano(plain, Usage(2006, 300, 0), ONE)


def test_cached_tokens_are_capped_at_prompt_tokens() -> None:
    # 100 cached tokens × $1.25/M = 125,000 nano-USD; never 10,000 of them.
    assert cost_nano(GPT_4O, Usage(100, 0, 10_000), ONE) == cost_nano(GPT_4O, Usage(100, 0, 100), ONE) == 125_000


def test_zero_cached_price_makes_cache_hits_free() -> None:
    free_cache = price("3", "15", cached_usd="0")
    assert cost_nano(free_cache, Usage(1000, 0, 1000), ONE) == 0


def test_multiplier() -> None:
    usage = Usage(1000, 500)
    assert cost_nano(GPT_4O, usage, 850_000) == 6_375_000
    assert cost_nano(GPT_4O, usage, 2_000_000) == 15_000_000
    assert cost_nano(GPT_4O, usage, 0) == 0


def nano_price(input_nano_per_mtok: int, output_nano_per_mtok: int) -> PriceView:
    return PriceView("m", input_nano_per_mtok, output_nano_per_mtok, None, None)


def test_rounds_half_up_once_at_the_end() -> None:
    cheap = nano_price(150_000, 600_000)  # 0.15 nano-USD per input token, 0.6 per output token
    # 1 token: 0.15 → 0; 3: 0.45 → 0; 4: 0.6 → 1; 10: exactly 1.5 → 2 (half up)
    assert [cost_nano(cheap, Usage(n, 0), ONE) for n in (1, 3, 4, 10)] == [0, 0, 1, 2]
    # 7 in + 1 out = 1.05 + 0.6 = 1.65 → 2
    assert cost_nano(cheap, Usage(7, 1), ONE) == 2
    # exactly half rounds up, just below half rounds down
    assert cost_nano(nano_price(100_000, 0), Usage(5, 0), ONE) == 1
    assert cost_nano(nano_price(100_000, 0), Usage(4, 0), ONE) == 0


def test_parts_are_summed_before_rounding() -> None:
    # 0.4 + 0.4 = 0.8 → 1, where rounding each part first would give 0 + 0 = 0.
    assert cost_nano(nano_price(400_000, 400_000), Usage(1, 1), ONE) == 1


def test_multiplier_is_applied_before_rounding() -> None:
    # 30 tokens × 0.15 = 4.5 nano; × 0.5 = 2.25 → 2. Rounding before the multiplier would give 5 × 0.5 = 2.5 → 3.
    assert cost_nano(nano_price(150_000, 0), Usage(30, 0), 500_000) == 2


def test_large_requests_stay_exact() -> None:
    usage = Usage(prompt_tokens=10**9, completion_tokens=10**9, cached_tokens=5 * 10**8)
    # 5e8 × 2.5 + 5e8 × 1.25 + 1e9 × 10 USD per 1M tokens = 1250 + 625 + 10000 = $11875
    assert cost_nano(GPT_4O, usage, ONE) == usd_to_nano("11875")


def test_per_request_price_ignores_tokens() -> None:
    image = price("5", "5", per_request_usd="0.04")
    assert cost_nano(image, Usage(0, 0), ONE) == 40_000_000
    assert cost_nano(image, Usage(10**6, 10**6, 10**6), ONE) == 40_000_000
    assert cost_nano(image, Usage(1, 1), 1_500_000) == 60_000_000


def test_per_request_price_rounds_half_up_with_the_multiplier() -> None:
    odd = price("0", "0", per_request_usd="0.000000003")  # 3 nano-USD
    assert cost_nano(odd, Usage(), 500_000) == 2  # 1.5 → 2
    assert cost_nano(odd, Usage(), 400_000) == 1  # 1.2 → 1


def test_usage_source_does_not_change_the_price() -> None:
    assert cost_nano(GPT_4O, Usage(10, 10, 0, ESTIMATED), ONE) == cost_nano(GPT_4O, Usage(10, 10), ONE)


@pytest.mark.parametrize("multiplier", [ONE, 850_000, 1_300_000])
def test_estimate_equals_the_cost_of_that_usage(multiplier: int) -> None:
    assert estimate_nano(GPT_4O, 700, 1024, multiplier) == cost_nano(GPT_4O, Usage(700, 1024), multiplier)
    # The estimate never assumes a cache hit.
    assert estimate_nano(GPT_4O, 700, 0, multiplier) >= cost_nano(GPT_4O, Usage(700, 0, 700), multiplier)
