import pytest

from tests.admin.expect import gateway_error
from tollway.admin.validation import (
    UNSET,
    Unset,
    duration_ms,
    iso_from_ms,
    iso_to_ms,
    parse_time_point,
    parse_usd,
    usd_text,
)
from tollway.pipeline.errors import BAD_REQUEST
from tollway.store.db import now_ms


def test_unset_is_a_falsy_singleton() -> None:
    assert Unset() is UNSET and isinstance(UNSET, Unset)
    assert not UNSET and repr(UNSET) == "UNSET"


@pytest.mark.parametrize(
    ("text", "nano"), [("5", 5_000_000_000), ("0.25", 250_000_000), ("0.000000001", 1), (" 1.5 ", 1_500_000_000)]
)
def test_parse_usd_is_exact(text: str, nano: int) -> None:
    assert parse_usd(text, param="x") == nano


@pytest.mark.parametrize("bad", ["0.0000000001", "abc", "NaN", "Infinity", "", 1.5, None, True])
def test_parse_usd_refuses_inexact_or_non_text(bad: object) -> None:
    with gateway_error(BAD_REQUEST, param="amount"):
        parse_usd(bad, param="amount")


def test_negative_only_when_allowed() -> None:
    assert parse_usd("-1.5", param="d", allow_negative=True) == -1_500_000_000
    with gateway_error(BAD_REQUEST, param="d", match="must not be negative"):
        parse_usd("-1.5", param="d")


@pytest.mark.parametrize(
    ("nano", "text"),
    [
        (5_000_000_000, "5"),
        (10_000_000_000, "10"),
        (1_500_000, "0.0015"),
        (1, "0.000000001"),
        (0, "0"),
        (-1, "-0.000000001"),
    ],
)
def test_usd_text_is_plain_decimal(nano: int, text: str) -> None:
    assert usd_text(nano) == text
    assert usd_text(None) is None


def test_iso_round_trip() -> None:
    assert iso_from_ms(0) == "1970-01-01T00:00:00Z"
    assert iso_from_ms(1_796_317_200_000) == "2026-12-03T17:00:00Z"
    assert iso_from_ms(1_796_317_200_123) == "2026-12-03T17:00:00.123Z"
    assert iso_to_ms("2026-12-03T17:00:00Z") == 1_796_317_200_000
    assert iso_to_ms("2026-12-03T17:00:00") == 1_796_317_200_000  # naive is UTC
    assert iso_to_ms("2026-12-04T01:00:00+08:00") == 1_796_317_200_000
    assert iso_to_ms("2026-12-03") == 1_796_256_000_000
    assert iso_to_ms("yesterday") is None


def test_durations_and_time_points() -> None:
    assert [duration_ms(t) for t in ("30s", "15m", "2h", "7d", "1w", "3 D")] == [
        30_000,
        900_000,
        7_200_000,
        604_800_000,
        604_800_000,
        259_200_000,
    ]
    assert duration_ms("15") is None and duration_ms("-1h") is None
    before = now_ms()
    assert before - 3_600_000 <= parse_time_point("1h", param="t", relative_to_future=False) <= now_ms() - 3_600_000
    assert parse_time_point("1h", param="t", relative_to_future=True) >= before + 3_600_000
    with gateway_error(BAD_REQUEST, param="since", match="`15m`"):
        parse_time_point("soon", param="since", relative_to_future=False)
