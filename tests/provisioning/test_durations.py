from datetime import timedelta

import pytest

from provisioning.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("90d", timedelta(days=90)),
        ("91d", timedelta(days=91)),  # the range is the service's rule, not the parser's
        ("0m", timedelta(0)),
        (" 15M ", timedelta(minutes=15)),
    ],
)
def test_parse_duration_accepts_zero_and_number_with_unit(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "15", "90", "-5m", "1.5h", "15 m", "15min", "1w", "1h30m", "٣m"]
)
def test_parse_duration_rejects_other_forms_naming_the_accepted_ones(text):
    with pytest.raises(DurationError) as excinfo:
        parse_duration(text)
    assert "30s, 15m, 12h, 90d" in str(excinfo.value)


def test_parse_duration_rejects_overflow_with_a_clear_error():
    with pytest.raises(DurationError, match="too long"):
        parse_duration("1000000000d")


@pytest.mark.parametrize(
    "value, expected",
    [
        (timedelta(0), "0"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(minutes=90), "90m"),
        (timedelta(hours=12), "12h"),
        (timedelta(days=1), "1d"),
        (timedelta(days=90), "90d"),
        (timedelta(days=1, seconds=1), "86401s"),
    ],
)
def test_format_duration_uses_the_largest_exact_unit(value, expected):
    assert format_duration(value) == expected


@pytest.mark.parametrize("text", ["0", "30s", "15m", "12h", "90d", "61m", "25h"])
def test_format_duration_round_trips_through_parse_duration(text):
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
