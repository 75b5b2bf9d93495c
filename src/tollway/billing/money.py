"""Exact money: every amount is an integer number of nano-USD (1e-9 USD).

Why nano-USD: a One API / New API quota unit is exactly 2,000 nano-USD
(500,000 quota = 1 USD), and the cheapest real prices (a few cents per
million tokens) still cost a whole number of nano-USD per token, so no
float ever touches a balance.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation

NANO_PER_USD = 1_000_000_000
NANO_PER_ONEAPI_QUOTA = 2_000  # 500,000 quota == 1 USD
PPM = 1_000_000  # multipliers are stored as parts per million (1.0 == 1_000_000)


class MoneyError(ValueError):
    """A money amount given by a human could not be read exactly."""


def usd_to_nano(value: str | int | Decimal) -> int:
    """Parse a USD amount ("2.5", "0.000001") into nano-USD, refusing anything inexact."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MoneyError(f"`{value}` is not a number of US dollars") from exc
    if not amount.is_finite():
        raise MoneyError(f"`{value}` is not a finite amount")
    # Scale by moving the exponent (scaleb), which is exact at any length, unlike a multiply
    # in the default 28-digit context.
    nano = amount.scaleb(9, context=Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN))
    if nano != nano.to_integral_value(context=Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)):
        raise MoneyError(f"`{value}` USD has more than 9 decimal places; Tollway counts in nano-USD")
    return int(nano)


def nano_to_usd(nano: int) -> Decimal:
    return (Decimal(nano) / NANO_PER_USD).normalize() if nano else Decimal(0)


def format_usd(nano: int) -> str:
    """Human form with at least 2 decimals and no trailing noise: 1500000 -> '$0.0015'."""
    sign = "-" if nano < 0 else ""
    text = f"{Decimal(abs(nano)) / NANO_PER_USD:.9f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{sign}${whole}.{frac.ljust(2, '0')}"


def parse_multiplier(value: str | int | Decimal) -> int:
    """Parse a price multiplier ("0.85") into parts per million."""
    try:
        ratio = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MoneyError(f"`{value}` is not a multiplier") from exc
    if not ratio.is_finite() or ratio < 0:
        raise MoneyError(f"multiplier `{value}` must be zero or positive")
    ppm = ratio * PPM
    if ppm != ppm.to_integral_value():
        raise MoneyError(f"multiplier `{value}` has more than 6 decimal places")
    return int(ppm)


def format_multiplier(ppm: int) -> str:
    text = f"{Decimal(ppm) / PPM:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def divide_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero, used once per request at the very end."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient
