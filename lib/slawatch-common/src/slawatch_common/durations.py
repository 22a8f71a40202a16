"""Durations in the configuration (engine and notifier alike): seconds, or text like
``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"``."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: Any) -> int:
    """Seconds from an integer or text like ``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"``.

    A day is 24 hours (of business time, where a calendar counts it).
    """
    if isinstance(value, bool):
        raise ValueError("a duration is seconds or text like '15m'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    match = _DURATION.match(str(value).strip()) if isinstance(value, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"{value!r} is not a duration like '90s', '15m', '4h', '1h30m', '2d'")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


Duration = Annotated[int, BeforeValidator(parse_duration)]
