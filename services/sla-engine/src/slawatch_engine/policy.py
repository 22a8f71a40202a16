"""Policies and calendars from the YAML configuration, validated at start-up.

A policy says which targets apply to a ticket: ordered rules match by
customer, service, type and priority; the first match wins, and a policy
without ``match`` fits every ticket (the default, last). The engine reads the
``calendars`` and ``policies`` sections; other sections belong to other
services and are ignored here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    model_validator,
)

from slawatch_common.durations import Duration, parse_duration
from slawatch_common.events import Metric, Priority, Ticket, TicketEventType
from slawatch_common.runtime import ConfigError, describe_errors, read_yaml
from slawatch_engine.calendar import (
    ALWAYS,
    Calendar,
    CalendarError,
    DayMode,
    Schedule,
    parse_hours,
    weekly_hours,
)
from slawatch_engine.clock import ReopenMode
from slawatch_engine.contracts import Contract
from slawatch_engine.holiday_sets import holiday_set

DEFAULT_PRIORITY = Priority.P3
"""The priority of a ticket whose source sent none."""

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Hours = list[Annotated[list[str], Field(min_length=2, max_length=2)]]


class HoursConfig(_Strict):
    """A calendar's hours: weekly hours, closed dates, per-date hours, holiday sets."""

    weekly: dict[Weekday, Hours] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)
    overrides: dict[date, Hours] = Field(default_factory=dict)
    holiday_sets: list[Literal["CN"]] = Field(default_factory=list)
    workday_hours: Hours | None = Field(
        default=None,
        description="Hours of a make-up working day from a holiday set; default: the "
        "hours of the first weekday that has any (Monday's in a Monday-Friday week).",
    )

    def schedule(self, name: str, effective_from: date, always: bool) -> Schedule:
        by_day: dict[str, Hours] = {str(day): hours for day, hours in self.weekly.items()}
        weekly = ALWAYS if always else weekly_hours(name, by_day)
        closed: set[date] = set(self.holidays)
        makeup: set[date] = set()
        for code in self.holiday_sets:
            set_closed, set_makeup = holiday_set(code)
            closed |= set_closed
            makeup |= set_makeup
        workday = (
            parse_hours(name, "workday_hours", self.workday_hours)
            if self.workday_hours is not None
            else next((hours for hours in weekly if hours), ())
        )
        return Schedule(
            weekly=weekly,
            effective_from=effective_from,
            holidays=frozenset(closed - makeup) | frozenset(self.holidays),
            overrides={
                day: parse_hours(name, day.isoformat(), hours)
                for day, hours in self.overrides.items()
            },
            makeup_days=frozenset(makeup - set(self.holidays)),
            workday=workday,
        )


class CalendarVersion(HoursConfig):
    """The calendar's hours in full, in force from ``effective_from`` on."""

    effective_from: date


class CalendarConfig(HoursConfig):
    """One calendar, as in the YAML file and in preview requests."""

    timezone: str = "UTC"
    always_open: bool = False
    versions: list[CalendarVersion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _usable(self) -> CalendarConfig:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        if self.always_open and self.weekly:
            raise ValueError("a calendar is either always_open or has weekly hours, not both")
        self.build("check")
        return self

    def build(self, name: str) -> Calendar:
        try:
            versions = [self.schedule(name, date.min, self.always_open)]
            versions += [v.schedule(name, v.effective_from, False) for v in self.versions]
            return Calendar(name, ZoneInfo(self.timezone), versions)
        except CalendarError as exc:
            raise ValueError(str(exc).replace("calendar check: ", "")) from None


class WorkingDays(_Strict):
    """A target in working days: N working days later at the same local time, or at
    the end of the Nth working day."""

    working_days: int = Field(ge=0, le=3650)
    at: DayMode = "same_time"


Target = Duration | WorkingDays


def target_seconds(target: Target, start: datetime, calendar: Calendar) -> int:
    """The target as business seconds for a clock (cycle) starting at ``start``."""
    if isinstance(target, int):
        return target
    deadline = calendar.add_days(start, target.working_days, target.at)
    return round(calendar.between(start, deadline))


class Targets(_Strict):
    response: Target | None = None
    resolution: Target | None = None
    update: Target | None = Field(
        default=None, description="A progress update every so long while open."
    )

    def of(self, metric: Metric) -> Target | None:
        """The target of a ticket clock's metric (none for availability, a contract's)."""
        return {
            Metric.RESPONSE: self.response,
            Metric.RESOLUTION: self.resolution,
            Metric.UPDATE: self.update,
        }.get(metric)


class Match(_Strict):
    customer: list[str] | None = None
    service: list[str] | None = None
    type: list[str] | None = None
    priority: list[Priority] | None = None

    def fits(self, ticket: Ticket, priority: Priority) -> bool:
        return (
            _among(ticket.customer, self.customer)
            and _among(ticket.service, self.service)
            and _among(ticket.type, self.type)
            and _among(priority, self.priority)
        )


def _among(value: str | None, allowed: Sequence[str] | None) -> bool:
    return allowed is None or value in allowed


DEFAULT_STOPS: dict[Metric, tuple[str, ...]] = {
    Metric.RESPONSE: ("ticket.responded", "ticket.resolved", "ticket.closed"),
    Metric.RESOLUTION: ("ticket.resolved", "ticket.closed"),
    Metric.UPDATE: ("ticket.resolved", "ticket.closed"),
}
"""What stops each metric unless a policy says otherwise (resolving also answers)."""

_CONTRACT_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_LEAD_TEXT = re.compile(r"^\s*(\S+)\s+before\s*$")
_NAMED = re.compile(r"^warning:([1-9][0-9]?|[0-9]+s-before)$")


def stage_name(warning: int | str) -> str:
    """``75`` → ``warning:75``; ``"15m before"`` → ``warning:900s-before``."""
    if isinstance(warning, str) and _NAMED.match(warning):
        return warning
    if isinstance(warning, int):
        if not 0 < warning < 100:
            raise ValueError("a warning percentage is between 1 and 99")
        return f"warning:{warning}"
    match = _LEAD_TEXT.match(warning)
    if not match:
        raise ValueError(f"{warning!r} is neither a percentage nor a lead time like '15m before'")
    seconds = parse_duration(match.group(1))
    if seconds <= 0:
        raise ValueError("a lead time must be positive")
    return f"warning:{seconds}s-before"


Warning = Annotated[str, BeforeValidator(stage_name)]


class Policy(_Strict):
    name: str = Field(min_length=1, max_length=100)
    match: Match = Field(default_factory=Match)
    calendar: str
    escalation: str | None = None
    warn_at: list[Warning] = Field(
        default_factory=lambda: ["warning:50", "warning:75", "warning:90"],
        description="Percentages of the target and/or lead times such as '15m before'.",
    )
    pause_statuses: list[str] = Field(
        default_factory=list, description="Statuses that pause every metric."
    )
    pause: dict[Metric, list[str]] = Field(
        default_factory=dict, description="Statuses that pause one metric (instead of the above)."
    )
    stops: dict[Metric, list[TicketEventType]] = Field(
        default_factory=dict, description="Event types that stop a metric (defaults: see docs)."
    )
    reopen: ReopenMode = Field(
        default="exclude",
        description="What reopening does to the resolution clock: exclude (continue, the "
        "resolved time not counted), include (counted) or restart (from zero).",
    )
    targets: dict[Priority, Targets]

    @model_validator(mode="after")
    def _ticket_metrics(self) -> Policy:
        for section in ("pause", "stops"):
            if Metric.AVAILABILITY in getattr(self, section):
                raise ValueError(f"{section}: availability is a contract's, not a ticket's")
        return self

    def target(self, priority: Priority, metric: Metric) -> Target | None:
        targets = self.targets.get(priority)
        return None if targets is None else targets.of(metric)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.warn_at))

    def pauses(self, metric: Metric, status: str) -> bool:
        return status in self.pause.get(metric, self.pause_statuses)

    def stopped_by(self, metric: Metric, event_type: str) -> bool:
        return event_type in self.stops.get(metric, DEFAULT_STOPS[metric])


class PriorityMatrix(RootModel[dict[str, dict[str, Priority]]]):
    """urgency → impact → priority, for sources that send urgency and impact."""

    def priority(self, urgency: str | None, impact: str | None) -> Priority | None:
        if urgency is None or impact is None:
            return None
        return self.root.get(urgency, {}).get(impact)


class EngineConfig(_Strict):
    """The engine's part of the configuration file."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    calendars: dict[str, CalendarConfig]
    priority_matrix: PriorityMatrix = Field(default_factory=lambda: PriorityMatrix({}))
    policies: list[Policy] = Field(min_length=1)
    contracts: dict[str, Contract] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> EngineConfig:
        names = [policy.name for policy in self.policies]
        if len(names) != len(set(names)):
            raise ValueError("policy names must be unique")
        for index, policy in enumerate(self.policies):
            if policy.calendar not in self.calendars:
                raise ValueError(f"policies.{index}.calendar: unknown calendar {policy.calendar!r}")
        for name, contract in self.contracts.items():
            if not _CONTRACT_NAME.match(name):
                raise ValueError(
                    f"contracts.{name[:100]}: a contract's name is 1-100 letters, digits, "
                    "'.', '_' or '-'"
                )
            for index, policy_name in enumerate(contract.policies):
                if policy_name not in names:
                    raise ValueError(
                        f"contracts.{name}.policies.{index}: unknown policy {policy_name!r}"
                    )
        return self


class PolicyBook:
    """The validated policies and built calendars; chooses the policy of a ticket."""

    def __init__(self, config: EngineConfig) -> None:
        self.matrix = config.priority_matrix
        self._policies = tuple(config.policies)
        self._by_name = {policy.name: policy for policy in config.policies}
        self.calendars = {name: cal.build(name) for name, cal in config.calendars.items()}
        self.calendar_configs: dict[str, CalendarConfig] = dict(config.calendars)
        self.contracts: dict[str, Contract] = dict(config.contracts)
        self._contracts_of: dict[str, tuple[str, ...]] = {
            policy.name: tuple(n for n, c in config.contracts.items() if policy.name in c.policies)
            for policy in config.policies
        }

    def contracts_of(self, policy: str) -> tuple[str, ...]:
        """The names of the contracts that cover the tickets of ``policy``."""
        return self._contracts_of.get(policy, ())

    def select(self, ticket: Ticket, priority: Priority) -> Policy | None:
        """The first policy that fits, or None when no rule (and no default) fits."""
        return next((p for p in self._policies if p.match.fits(ticket, priority)), None)

    def priority(self, ticket: Ticket, known: Priority | None) -> Priority:
        """The ticket's priority: as sent, else from urgency × impact, else as known, else P3."""
        return (
            ticket.priority
            or self.matrix.priority(ticket.urgency, ticket.impact)
            or known
            or DEFAULT_PRIORITY
        )

    def named(self, name: str) -> Policy | None:
        return self._by_name.get(name)

    def calendar(self, name: str) -> Calendar:
        return self.calendars[name]


def load_policies(path: Path) -> PolicyBook:
    """Read and validate ``path``; ``ConfigError`` names every bad place."""
    raw = read_yaml(path)
    try:
        config = EngineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}:\n{describe_errors(exc)}") from None
    problems = _notifier_references(config, raw.get("notifier"))
    if problems:
        raise ConfigError(f"{path}:\n" + "\n".join(problems))
    return PolicyBook(config)


def _notifier_references(config: EngineConfig, notifier: Any) -> list[str]:
    """Contracts name people and chains of the notifier's part: each must exist there."""
    if not isinstance(notifier, dict):
        return []
    groups = (f"group:{group}" for group in notifier.get("groups") or {})
    people = {*(notifier.get("people") or {}), *groups}
    chains = set(notifier.get("escalations") or {})
    problems = []
    for name, contract in config.contracts.items():
        for index, who in enumerate(contract.report_to):
            if who not in people:
                problems.append(
                    f"contracts.{name}.report_to.{index}: {who!r} is no person of the "
                    "notifier (nor group:<id>)"
                )
        if contract.escalation is not None and contract.escalation not in chains:
            problems.append(
                f"contracts.{name}.escalation: unknown escalation chain {contract.escalation!r}"
            )
    return problems
