"""Maintained lists of statutory holidays and make-up working days, by code.

``CN``: the State Council's yearly arrangement for mainland China (public
holidays, and the weekend days worked in exchange, 调休), from the
``chinese-calendar`` package; a year appears there once it is published.
"""

from __future__ import annotations

from datetime import date
from functools import cache

import chinese_calendar

CODES = ("CN",)


@cache
def holiday_set(code: str) -> tuple[frozenset[date], frozenset[date]]:
    """(closed dates, make-up working dates) of the set ``code``."""
    if code != "CN":
        raise KeyError(f"unknown holiday set {code!r}; known: {', '.join(CODES)}")
    return frozenset(chinese_calendar.holidays), frozenset(chinese_calendar.workdays)
