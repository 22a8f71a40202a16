"""Contracts: what a provider promised a customer, from the ``contracts`` section of the YAML.

A contract names the policies whose tickets it covers, the targets of the
four ticket indicators, groups of monitored services with an availability
target, planned maintenance, service-credit tiers and who receives its
report. ``slawatch-engine check-config`` validates it with the rest of the
engine's part of the file. What each indicator means is in docs/COMPLIANCE.md.

```yaml
contracts:
  acme:
    customer: ACME Ltd
    provider: Example Ops Co
    time_zone: Asia/Shanghai
    policies: [network-critical, default]
    targets: {mean_response_time: 30m, on_time_resolution_rate: 90,
              response_overdue_rate: 10, mean_satisfaction: 90}
    availability:
      network: {services: [core-net], target: 99}
    maintenance:
      - {services: [core-net], rrule: "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", duration: 2h}
    credits:
      cap_percent: 25
      tiers: [{indicator: on_time_resolution_rate, below: 90, percent: 5}]
```
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slawatch_common.durations import Duration
from slawatch_engine.availability import MaintenanceWindow

Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Review = Literal["monthly", "quarterly", "yearly"]
Language = Literal["en", "zh-CN"]
LANGUAGES: tuple[Language, ...] = ("en", "zh-CN")
MAX_ISSUE_AFTER = 31 * 86400

TICKET_INDICATORS = (
    "mean_response_time",
    "response_overdue_rate",
    "on_time_resolution_rate",
    "mean_satisfaction",
)
LOWER_IS_BETTER = frozenset({"mean_response_time", "response_overdue_rate"})
"""Indicators met when low: a credit tier for them names ``above``, not ``below``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Term(_Strict):
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> Term:
        if self.end < self.start:
            raise ValueError("term.end is before term.start")
        return self


class TicketTargets(_Strict):
    """The four ticket indicators' targets; the source documents' values by default."""

    mean_response_time: Duration = Field(
        default=1800, description="Met when the mean response time is at most this (<=)."
    )
    on_time_resolution_rate: Percent = Field(default=90, description="Met when >= (percent).")
    response_overdue_rate: Percent = Field(
        default=10, description="Met when strictly below (percent)."
    )
    mean_satisfaction: Percent = Field(default=90, description="Met when >= (percent).")


class AvailabilityGroup(_Strict):
    """Monitored services (the alerts' ``service``) whose joint availability is promised."""

    services: list[Name] = Field(min_length=1)
    target: Percent = Field(description="Met when the group's availability is >= this.")

    @model_validator(mode="after")
    def _each_once(self) -> AvailabilityGroup:
        twice = sorted({s for s in self.services if self.services.count(s) > 1})
        if twice:
            raise ValueError(f"services: listed twice: {', '.join(twice)}")
        return self


class CreditTier(_Strict):
    """A credit owed when an indicator is worse than a bound: under ``below`` for the
    indicators met when high; over ``above`` or from ``at_least`` on for the mean
    response time and the overdue rate (met when low). The bound is in the
    indicator's unit: minutes for the mean response time, percent otherwise."""

    indicator: str = Field(
        description="A ticket indicator, or availability:<group>.", min_length=1, max_length=300
    )
    below: float | None = Field(default=None, allow_inf_nan=False)
    above: float | None = Field(default=None, allow_inf_nan=False)
    at_least: float | None = Field(default=None, allow_inf_nan=False)
    percent: Percent

    @model_validator(mode="after")
    def _one_bound(self) -> CreditTier:
        given = [b for b in ("below", "above", "at_least") if getattr(self, b) is not None]
        allowed = ("above", "at_least") if self.indicator in LOWER_IS_BETTER else ("below",)
        if len(given) != 1 or given[0] not in allowed:
            raise ValueError(f"a tier of {self.indicator} names one bound: {' or '.join(allowed)}")
        return self

    @property
    def bound(self) -> tuple[str, float]:
        """The bound's name and value."""
        for name in ("below", "above", "at_least"):
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise AssertionError("validated: a tier has one bound")

    def applies(self, value: Fraction | float | None) -> bool:
        if value is None:
            return False
        name, bound = self.bound
        exact = Fraction(repr(bound))
        if name == "below":
            return value < exact
        if name == "above":
            return value > exact
        return value >= exact


class Credits(_Strict):
    cap_percent: Percent = 100
    tiers: list[CreditTier] = Field(default_factory=list)


class Contract(_Strict):
    customer: Name
    provider: Name
    time_zone: str = "UTC"
    term: Term | None = None
    review: Review = Field(default="monthly", description="When the report is issued.")
    language: Language = Field(default="en", description="The report's language.")
    issue_after: Duration = Field(
        default=3600,
        ge=0,
        le=MAX_ISSUE_AFTER,
        description="How long after its period ends the report is issued (late events "
        "still count); at most 31 days.",
    )
    policies: list[Name] = Field(
        min_length=1, description="The tickets whose clocks these policies govern."
    )
    targets: TicketTargets = Field(default_factory=TicketTargets)
    availability: dict[Name, AvailabilityGroup] = Field(default_factory=dict)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    credits: Credits | None = None
    report_to: list[Name] = Field(
        default_factory=list,
        max_length=100,
        description="People (or group:<id>) of the notifier's configuration.",
    )
    escalation: Name | None = Field(
        default=None,
        description="The escalation chain of the availability warnings and breaches.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone: unknown time zone {self.time_zone!r}") from None
        known = {*TICKET_INDICATORS, *(f"availability:{group}" for group in self.availability)}
        for index, tier in enumerate(self.credits.tiers if self.credits else ()):
            if tier.indicator not in known:
                raise ValueError(
                    f"credits.tiers.{index}.indicator: unknown indicator {tier.indicator!r} "
                    f"(one of {', '.join(sorted(known))})"
                )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def services(self) -> list[str]:
        """Every monitored service of the contract, each once, in order."""
        return list(dict.fromkeys(s for g in self.availability.values() for s in g.services))
