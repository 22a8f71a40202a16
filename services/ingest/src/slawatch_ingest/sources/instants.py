"""Reading the instants webhooks carry, into timezone-aware UTC datetimes.

Sources write instants in several ways: RFC 3339 (``2024-04-17T17:18:10Z``),
ISO 8601 with a basic offset (Jira's ``2015-12-20T18:25:09.582+0000``),
nanoseconds (Zendesk), a date and time with no offset (ServiceNow's
``2024-01-15 10:30:00``, GLPI), or a Unix epoch in seconds or milliseconds
(Jira's ``timestamp``). ``instant`` reads them all; a time without an offset
is read in the zone given (UTC unless configured).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

EPOCH_MS_THRESHOLD = 100_000_000_000
"""Epoch values above this are milliseconds (seconds would be after the year 5138)."""


def instant(value: object, *, zone: tzinfo = UTC) -> datetime:
    """``value`` as an aware UTC datetime; ``ValueError`` (saying why) if it is none."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > EPOCH_MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):  # beyond what a datetime holds
            raise ValueError(f"{value!r} is not a time in the years 1 to 9999") from None
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time")
    text = value.strip()
    if text.isdigit():
        return instant(int(text), zone=zone)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before the year 1 in UTC
        raise ValueError(f"{value!r} is not a time in the years 1 to 9999 (UTC)") from None


def optional_instant(value: object, *, zone: tzinfo = UTC) -> datetime | None:
    """``instant``, except that absence and Go's zero time (year 1) are ``None``.

    Alertmanager and Grafana send ``0001-01-01T00:00:00Z`` as the end of an
    alert that has not ended.
    """
    if value is None or value == "":
        return None
    moment = instant(value, zone=zone)
    return None if moment.year <= 1 else moment
