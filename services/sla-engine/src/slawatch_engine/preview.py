"""What-if answers: a deadline, or the business time between two instants.

The operator's preview and our conformance interface, served by
``slawatch-engine preview`` (stdin → stdout) and ``POST /v1/preview``. A
request is one object, or an array answered in the same order:

    {"calendar": {...} | {"name": "cn-office"}, "start": "<RFC 3339>",
     "target_seconds": 7200, "pauses": [["<from>", "<to>"], ...]}
        → {"deadline": "<RFC 3339>"}
    {"calendar": ..., "start": ..., "target_days": 2, "at": "end_of_day"}
        → {"deadline": ...}                         (working days; at: same_time | end_of_day)
    {"calendar": ..., "from": "...", "to": "...", "pauses": [...]}
        → {"business_seconds": 5400}

A bad request yields ``{"error": "..."}`` in its place; the others are still
answered. Deadlines are given in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from slawatch_common.runtime import describe_errors
from slawatch_engine.calendar import Calendar, CalendarError
from slawatch_engine.policy import CalendarConfig

Pause = tuple[AwareDatetime, AwareDatetime]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    calendar: dict[str, Any]
    pauses: list[Pause] = Field(default_factory=list)


class DeadlineRequest(_Request):
    start: AwareDatetime
    target_seconds: Annotated[float, Field(ge=0)] | None = None
    target_days: Annotated[int, Field(ge=0)] | None = None
    at: Literal["same_time", "end_of_day"] = "same_time"


class ElapsedRequest(_Request):
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime


class Previewer:
    """Answers requests; named calendars come from the policy file."""

    def __init__(self, named: Mapping[str, Calendar]) -> None:
        self._named = named
        self._built: dict[str, Calendar] = {}

    def answer_all(self, body: Any) -> Any:
        if isinstance(body, list):
            return [self.answer(item) for item in body]
        return self.answer(body)

    def answer(self, request: Any) -> dict[str, Any]:
        """The answer to one request, or ``{"error": ...}``; never raises for bad input."""
        if not isinstance(request, dict):
            return {"error": "a request is a JSON object"}
        try:
            if "start" in request:
                return self._deadline(DeadlineRequest.model_validate(request))
            if "from" in request:
                return self._elapsed(ElapsedRequest.model_validate(request))
        except ValidationError as exc:
            return {"error": describe_errors(exc)}
        except (CalendarError, ValueError, KeyError) as exc:
            return {"error": str(exc)}
        return {"error": "a request has either 'start' (a deadline) or 'from' (elapsed time)"}

    def _deadline(self, request: DeadlineRequest) -> dict[str, Any]:
        calendar = self._calendar(request.calendar)
        if (request.target_seconds is None) == (request.target_days is None):
            raise ValueError("give exactly one of target_seconds and target_days")
        if request.target_days is not None:
            deadline = calendar.add_days(
                request.start, request.target_days, request.at, request.pauses
            )
        else:
            deadline = calendar.add(request.start, request.target_seconds or 0, request.pauses)
        return {"deadline": rfc3339(deadline)}

    def _elapsed(self, request: ElapsedRequest) -> dict[str, Any]:
        calendar = self._calendar(request.calendar)
        seconds = calendar.between(request.from_, request.to, request.pauses)
        return {"business_seconds": int(seconds) if seconds.is_integer() else seconds}

    def _calendar(self, spec: dict[str, Any]) -> Calendar:
        if set(spec) == {"name"}:
            name = spec["name"]
            if name not in self._named:
                raise KeyError(f"no calendar named {name!r}")
            return self._named[name]
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in self._built:
            try:
                self._built[key] = CalendarConfig.model_validate(spec).build("request")
            except ValidationError as exc:
                raise ValueError(describe_errors(exc, "calendar")) from None
        return self._built[key]


def rfc3339(moment: datetime) -> str:
    """UTC, with fractional seconds only when there are any."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
