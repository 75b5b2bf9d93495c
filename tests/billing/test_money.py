from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from tollway.billing.money import (
    NANO_PER_ONEAPI_QUOTA,
    NANO_PER_USD,
    PPM,
    MoneyError,
    divide_half_up,
    format_multiplier,
    format_usd,
    nano_to_usd,
    parse_multiplier,
    usd_to_nano,
)


@pytest.mark.parametrize(
    ("text", "nano"),
    [
        ("1", 1_000_000_000),
        ("2.5", 2_500_000_000),
        ("0.000001", 1_000),
        ("0.000000001", 1),
        ("0.1", 100_000_000),
        (" 3.14 ", 3_140_000_000),
        ("0", 0),
        ("-0.5", -500_000_000),
        ("1e-9", 1),
        ("1.000000000", 1_000_000_000),
        ("92233720.368547758", 92_233_720_368_547_758),
        (7, 7_000_000_000),
        (Decimal("0.3"), 300_000_000),
    ],
)
def test_usd_to_nano_is_exact(text: str | int | Decimal, nano: int) -> None:
    assert usd_to_nano(text) == nano
    assert isinstance(usd_to_nano(text), int)


def test_float_noise_never_appears() -> None:
    # 0.1 + 0.2 in floats is 0.30000000000000004; in nano-USD it is exact.
    assert usd_to_nano("0.1") + usd_to_nano("0.2") == usd_to_nano("0.3")
    assert sum(usd_to_nano("0.1") for _ in range(10)) == usd_to_nano("1")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("abc", "not a number"),
        ("", "not a number"),
        ("$5", "not a number"),
        ("1,5", "not a number"),
        ("NaN", "not a finite"),
        ("Infinity", "not a finite"),
        ("-inf", "not a finite"),
        ("0.0000000001", "more than 9 decimal places"),
        ("1.0000000005", "more than 9 decimal places"),
    ],
)
def test_usd_to_nano_refuses_bad_input(text: str, needle: str) -> None:
    with pytest.raises(MoneyError, match=needle) as info:
        usd_to_nano(text)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["1.0000000000000000000000000001", "12345678901234567890.123456789"])
def test_usd_to_nano_refuses_amounts_beyond_decimal_precision(text: str) -> None:
    try:
        nano = usd_to_nano(text)
    except MoneyError:
        return
    assert Fraction(nano) == Fraction(Decimal(text)) * NANO_PER_USD  # exact (Fraction never rounds) or refused


def test_nano_to_usd() -> None:
    assert nano_to_usd(1_500_000) == Decimal("0.0015")
    assert nano_to_usd(2_000_000_000) == Decimal("2")
    assert nano_to_usd(0) == 0
    assert nano_to_usd(-1) == Decimal("-0.000000001")
    for nano in (1, 999, 1_000_000_007, 123_456_789_012):
        assert usd_to_nano(nano_to_usd(nano)) == nano


def test_one_api_quota_converts_exactly() -> None:
    assert 500_000 * NANO_PER_ONEAPI_QUOTA == usd_to_nano("1") == NANO_PER_USD
    assert usd_to_nano("0.000002") == NANO_PER_ONEAPI_QUOTA  # one quota unit
    # A real One API balance: 123,456,789 quota = $246.913578, exactly.
    assert usd_to_nano("246.913578") == 123_456_789 * NANO_PER_ONEAPI_QUOTA
    assert format_usd(500_000 * NANO_PER_ONEAPI_QUOTA) == "$1.00"


@pytest.mark.parametrize(
    ("nano", "text"),
    [
        (0, "$0.00"),
        (1, "$0.000000001"),
        (1_500_000, "$0.0015"),
        (10_000_000, "$0.01"),
        (100_000_000, "$0.10"),
        (1_000_000_000, "$1.00"),
        (2_500_000_000, "$2.50"),
        (1_234_567_890_123, "$1234.567890123"),
        (-2_500_000_000, "-$2.50"),
        (-1, "-$0.000000001"),
    ],
)
def test_format_usd(nano: int, text: str) -> None:
    assert format_usd(nano) == text


@pytest.mark.parametrize(
    ("text", "ppm"),
    [("1", PPM), ("0.85", 850_000), ("0", 0), ("2", 2_000_000), ("0.000001", 1), (" 1.5 ", 1_500_000), (3, 3_000_000)],
)
def test_parse_multiplier(text: str | int, ppm: int) -> None:
    assert parse_multiplier(text) == ppm


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("x", "not a multiplier"),
        ("", "not a multiplier"),
        ("-0.1", "zero or positive"),
        ("NaN", "zero or positive"),
        ("Infinity", "zero or positive"),
        ("0.0000001", "more than 6 decimal places"),
    ],
)
def test_parse_multiplier_refuses_bad_input(text: str, needle: str) -> None:
    with pytest.raises(MoneyError, match=needle):
        parse_multiplier(text)


@pytest.mark.parametrize(
    ("ppm", "text"), [(PPM, "1"), (850_000, "0.85"), (0, "0"), (1, "0.000001"), (2_500_000, "2.5")]
)
def test_format_multiplier_round_trips(ppm: int, text: str) -> None:
    assert format_multiplier(ppm) == text
    assert parse_multiplier(text) == ppm


@pytest.mark.parametrize(
    ("numerator", "denominator", "result"),
    [
        (10, 5, 2),
        (14, 10, 1),
        (15, 10, 2),  # exactly half rounds up
        (16, 10, 2),
        (25, 10, 3),  # not banker's rounding
        (-15, 10, -2),  # half away from zero
        (-14, 10, -1),
        (0, 7, 0),
        (1, 2, 1),
        (1, 3, 0),
        (2, 3, 1),
        (10**30 + 5 * 10**17, 10**18, 10**12 + 1),  # big integers stay exact
    ],
)
def test_divide_half_up(numerator: int, denominator: int, result: int) -> None:
    assert divide_half_up(numerator, denominator) == result


@pytest.mark.parametrize("denominator", [0, -3])
def test_divide_half_up_needs_a_positive_denominator(denominator: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        divide_half_up(10, denominator)
