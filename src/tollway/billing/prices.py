"""What a request costs, in exact integer nano-USD.

cost = (uncached_input × input_price + cached_input × cached_price + output × output_price)
       / 1,000,000 tokens × group multiplier, rounded half-up to a whole nano-USD, once.
A model with a per-request price costs that price × group multiplier, whatever the tokens.
"""

from __future__ import annotations

from tollway.billing.money import PPM, divide_half_up
from tollway.snapshot.model import PriceView
from tollway.wire.usage import Usage

TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per 1M tokens


def cost_nano(price: PriceView, usage: Usage, multiplier_ppm: int) -> int:
    if price.per_request_nano is not None:
        return divide_half_up(price.per_request_nano * multiplier_ppm, PPM)
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_rate = (
        price.input_nano_per_mtok if price.cached_input_nano_per_mtok is None else price.cached_input_nano_per_mtok
    )
    token_cost = (
        (usage.prompt_tokens - cached) * price.input_nano_per_mtok
        + cached * cached_rate
        + usage.completion_tokens * price.output_nano_per_mtok
    )
    return divide_half_up(token_cost * multiplier_ppm, TOKENS_PER_PRICE_UNIT * PPM)


def estimate_nano(price: PriceView, prompt_tokens: int, max_output_tokens: int, multiplier_ppm: int) -> int:
    """The amount held before the call: an upper-ish bound so in-flight requests cannot
    overspend much (see docs/architecture.md, "Money")."""
    return cost_nano(price, Usage(prompt_tokens=prompt_tokens, completion_tokens=max_output_tokens), multiplier_ppm)
