"""Durations as operators type them: ``0``, ``30s``, ``15m``, ``12h``, ``90d``.

Used for the deactivation delay by ``manage.py scim_provider`` and the console. Parsing checks
the form only; the allowed range (0 to 90 days) is the provider services' rule, so it is
enforced, and worded, in one place (``provisioning.services``).
"""

from __future__ import annotations

import re
from datetime import timedelta

ACCEPTED_FORMS = "0, or a whole number followed by s, m, h or d (for example 30s, 15m, 12h, 90d)"

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?P<amount>[0-9]+)(?P<unit>[smhd])")


class DurationError(ValueError):
    """Text that is not a duration; the message names the accepted forms."""


def parse_duration(text: str) -> timedelta:
    """``"15m"`` → ``timedelta(minutes=15)``.

    A bare number is rejected (is ``90`` seconds, minutes or days?) except ``0``, which means
    the same in every unit. Units are case-insensitive; surrounding spaces are ignored.
    """
    cleaned = text.strip().lower()
    if cleaned == "0":
        return timedelta(0)
    match = _DURATION.fullmatch(cleaned)
    if match is None:
        raise DurationError(f"{text!r} is not a duration. Use {ACCEPTED_FORMS}.")
    try:
        return timedelta(seconds=int(match["amount"]) * _UNIT_SECONDS[match["unit"]])
    except (OverflowError, ValueError):  # past timedelta.max, or past int() digit limit
        raise DurationError(f"{text!r} is too long to be a duration.") from None


def format_duration(value: timedelta) -> str:
    """``timedelta(minutes=15)`` → ``"15m"``: the largest unit that states it exactly.

    The result parses back to the same value, except for fractions of a second (which no
    Gatehouse form produces); those are shown in seconds with their decimals.
    """
    if value.microseconds:
        return f"{value.total_seconds():g}s"
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{sign}{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{sign}{seconds}s"
