"""The window of instants ingest accepts, from ``earliest_instant`` to ``max_future_s`` ahead.

The contracts accept any RFC 3339 instant of the years 1 to 9999 at any
offset, but nothing downstream can use one that far out: the engine's clock
arithmetic leaves ``datetime``'s range near either end, and an event stamped
years ahead would hold a clock open until then. So every instant of an
inbound event — ``occurred_at`` and every other instant field of its contract
(``INSTANT_PATHS``) — must lie in the window, else the event is refused (422,
naming the field), on ``POST /v1/events`` and on the webhooks alike.

Each instant is held against the bounds by subtracting the clock reading
from it, which Python does without converting either side to UTC: an
instant that has no UTC form in ``datetime``'s range
(``0001-01-01T00:00:00+14:00``, ``9999-12-31T23:59:59-14:00``) is compared,
and refused, like any other.

Pure: the clock reading is passed in (``InstantWindow.at``).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel

from slawatch_common.events import MonitoringEvent, TicketEvent
from slawatch_ingest.parsing import Inbound, Problem
from slawatch_ingest.settings import IngestSettings

Clock = Callable[[], datetime]
"""Wall time, aware; tests pass a fixed one."""

Path = tuple[str, ...]


def wall_clock() -> datetime:
    """This server's clock, in UTC."""
    return datetime.now(UTC)


class OutOfWindow(StrEnum):
    """Why an instant is refused; the ``type`` of its error and the metric's ``reason``."""

    TOO_EARLY = "too_early"
    TOO_FAR_AHEAD = "too_far_ahead"


def instant_paths(model: type[BaseModel]) -> tuple[Path, ...]:
    """The attribute path of every instant field of ``model``, nested models included.

    Read from the annotations (optional fields too); instants inside lists or
    dicts are not found — the contracts hold none.
    """
    paths: list[Path] = []
    for name, field in model.model_fields.items():
        for kind in _kinds(field.annotation):
            if kind is AwareDatetime or (isinstance(kind, type) and issubclass(kind, datetime)):
                paths.append((name,))
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                paths.extend((name, *inner) for inner in instant_paths(kind))
    return tuple(paths)


def _kinds(annotation: Any) -> Iterator[Any]:
    """The types an annotation admits: the members of a union, the base of ``Annotated``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _kinds(get_args(annotation)[0])
    elif origin is Union or origin is types.UnionType:
        for member in get_args(annotation):
            yield from _kinds(member)
    else:
        yield annotation


INSTANT_PATHS: dict[type[Inbound], tuple[Path, ...]] = {
    model: instant_paths(model) for model in (TicketEvent, MonitoringEvent)
}
"""The instant fields checked, per inbound model (``occurred_at`` first)."""


@dataclass(frozen=True, slots=True)
class InstantWindow:
    """The configured window; ``at(now)`` gives its bounds at one reading of the clock."""

    earliest: datetime
    max_future_s: float

    @classmethod
    def of(cls, settings: IngestSettings) -> InstantWindow:
        return cls(settings.earliest_instant, settings.max_future_s)

    def at(self, now: datetime) -> Bounds:
        """The bounds for a request received at ``now``."""
        return Bounds(now, self.earliest, self.max_future_s)


class Bounds:
    """The window at one instant ``now``: from ``earliest`` to ``latest``, both accepted.

    Each instant is subtracted from ``now`` once and the difference compared
    with the bounds' own: exact, and cheaper than comparing it with each bound
    (every comparison of datetimes in different zones computes both offsets).
    """

    __slots__ = ("_after", "_ahead", "earliest", "latest", "max_future_s", "now")

    def __init__(self, now: datetime, earliest: datetime, max_future_s: float) -> None:
        self.now = now
        self.earliest = earliest
        self.max_future_s = max_future_s
        self._ahead = timedelta(seconds=max_future_s)
        self._after = earliest - now
        self.latest = now + self._ahead

    def problems(self, event: Inbound) -> list[Problem]:
        """Each instant of ``event`` outside the window, located inside the event."""
        found: list[Problem] = []
        for path in INSTANT_PATHS[type(event)]:
            value = _value_at(event, path)
            if not isinstance(value, datetime):
                continue  # an optional instant left out
            skew = value - self.now
            if skew < self._after:
                msg = (
                    f"{value.isoformat()} is before {self.earliest.isoformat()},"
                    " the earliest instant accepted"
                )
                found.append(Problem(path, msg, OutOfWindow.TOO_EARLY))
            elif skew > self._ahead:
                msg = (
                    f"{value.isoformat()} is {skew.total_seconds():.0f} s ahead of the server's"
                    f" clock; at most {self.max_future_s:g} s ahead is accepted"
                )
                found.append(Problem(path, msg, OutOfWindow.TOO_FAR_AHEAD))
        return found

    def skew_s(self, event: Inbound) -> float:
        """``occurred_at`` minus ``now`` in seconds: negative for an event in the past."""
        return (event.occurred_at - self.now).total_seconds()


def reason(problems: list[Problem]) -> OutOfWindow:
    """What one refused event counts as: the reason of its first instant out of the window."""
    return OutOfWindow(problems[0].type)


def _value_at(event: BaseModel, path: Path) -> object:
    value: object = event
    for name in path:
        value = getattr(value, name, None)
    return value
