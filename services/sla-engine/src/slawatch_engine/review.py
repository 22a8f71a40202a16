"""The yearly service review (服务回顾): a year's report with its months beside it. Pure.

The source documents ask the provider to review the service with the
customer at least once a year. The review is the year's report (the six
indicators over the year, its credits, its per-priority and per-service
breakdown) and, from the twelve monthly reports of the same ``as_of``:

- ``months``: each month's indicators and credit, side by side;
- ``breaches_by_cause``: per cause and month, the late response clocks, the
  late resolution clocks (breached, or open past the deadline) and, per
  availability group, whether the month missed its target (1) or not (0);
- ``reliability``: per monitored service over the year, ServiceNow's
  service-availability formulas: MTBF = (committed − downtime) ÷ outages and
  MTRS = downtime ÷ outages, where committed is the year up to ``as_of`` less
  planned maintenance and an outage is one merged interval outside maintenance
  (one cut in two by a maintenance window counts twice); null without an
  outage.

Only months that began by ``as_of`` are listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from slawatch_engine.compliance import Report
from slawatch_engine.periods import Period, period_of


def months_of(year: Period, zone: Any) -> list[Period]:
    """The calendar months of ``year`` (a period of kind ``year``) in ``zone``."""
    if year.kind != "year":
        raise ValueError(f"not a year: {year.label}")
    return [period_of(f"{year.label}-{month:02d}", zone) for month in range(1, 13)]


def review_of(year: Report, months: Sequence[Report]) -> dict[str, Any]:
    """The review's figures (the keys ``months``, ``breaches_by_cause``, ``reliability``)."""
    listed = [
        {
            "period": month.period.label,
            "from": month.period.start.astimezone(UTC).isoformat(),
            "to": month.period.end.astimezone(UTC).isoformat(),
            "tickets": month.counts["tickets"],
            "indicators": month.indicators,
            "credit_percent": month.credit_percent,
            "credits": month.credits,
        }
        for month in months
    ]
    causes: dict[str, dict[str, int]] = {"response": {}, "resolution": {}}
    for group in year.contract.availability:
        causes[f"availability:{group}"] = {}
    for month in months:
        label = month.period.label
        causes["response"][label] = month.counts["response"]["late"]
        resolution = month.counts["resolution"]
        causes["resolution"][label] = resolution["breached"] + resolution["open_late"]
        for group, figure in month.indicators["availability"].items():
            causes[f"availability:{group}"][label] = int(figure["met"] is False)
    breaches = [
        {"cause": cause, "total": sum(by_month.values()), "months": by_month}
        for cause, by_month in causes.items()
    ]
    reliability = {}
    for name, figures in year.services.items():
        outages = len(figures.outages)
        committed = figures.measured_seconds
        downtime = figures.outage_seconds
        reliability[name] = {
            "outages": outages,
            "downtime_minutes": round(downtime / 60, 4),
            "committed_minutes": round(committed / 60, 4),
            "mtbf_hours": round((committed - downtime) / outages / 3600, 4) if outages else None,
            "mtrs_minutes": round(downtime / outages / 60, 4) if outages else None,
        }
    return {"months": listed, "breaches_by_cause": breaches, "reliability": reliability}
