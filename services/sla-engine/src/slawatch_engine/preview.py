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

Limits, so that no request can hold the engine: at most ``MAX_REQUESTS`` in
one call (more: ``TooManyRequestsError``, a 422), at most ``MAX_PAUSES`` pauses
in one, an elapsed span of at most ``HORIZON_DAYS`` (a deadline is searched no
further than that anyway). The previewer's calendars are its own (built from
the same configuration, not the engine's), and their cached days are dropped
once they hold more than ``MAX_CACHED_DAYS``: preview traffic never grows the
engine's calendars, and its own memory stays bounded.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from slawatch_common.runtime import describe_errors
from slawatch_engine.calendar import HORIZON_DAYS, Calendar, CalendarError
from slawatch_engine.policy import CalendarConfig

Pause = tuple[AwareDatetime, AwareDatetime]
MAX_REQUESTS = 100
MAX_PAUSES = 100
MAX_CACHED_DAYS = 50_000
"""Days the previewer's calendars may cache together before they are built afresh."""
MAX_INLINE = 32
"""Inline calendars kept built at once (the most recently used)."""


class TooManyRequestsError(ValueError):
    """A call with more than ``MAX_REQUESTS`` requests."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    calendar: dict[str, Any]
    pauses: list[Pause] = Field(default_factory=list, max_length=MAX_PAUSES)


class DeadlineRequest(_Request):
    start: AwareDatetime
    target_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    target_days: Annotated[int, Field(ge=0)] | None = None
    at: Literal["same_time", "end_of_day"] = "same_time"


class ElapsedRequest(_Request):
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime


class Previewer:
    """Answers requests; named calendars come from the policy file (``configs``: built here,
    this previewer's own; ``named``: calendars built already, shared)."""

    def __init__(
        self,
        named: Mapping[str, Calendar] | None = None,
        configs: Mapping[str, CalendarConfig] | None = None,
    ) -> None:
        self._configs = dict(configs or {})
        self._shared = dict(named or {})
        self._named = self._fresh()
        self._built: OrderedDict[str, Calendar] = OrderedDict()
        self._lock = threading.Lock()

    def _fresh(self) -> dict[str, Calendar]:
        return {
            **self._shared,
            **{name: config.build(name) for name, config in self._configs.items()},
        }

    def answer_all(self, body: Any) -> Any:
        """The answers to one request or an array of at most ``MAX_REQUESTS``."""
        if isinstance(body, list) and len(body) > MAX_REQUESTS:
            raise TooManyRequestsError(
                f"at most {MAX_REQUESTS} requests a call; this one has {len(body)}"
            )
        with self._lock:  # one call at a time, whichever thread it comes from
            try:
                if isinstance(body, list):
                    return [self.answer(item) for item in body]
                return self.answer(body)
            finally:
                self._bound()

    def _bound(self) -> None:
        """Build this previewer's calendars afresh once they cache too many days."""
        own = [c for name, c in self._named.items() if name in self._configs]
        if sum(c.cached_days for c in (*own, *self._built.values())) > MAX_CACHED_DAYS:
            self._named = self._fresh()
            self._built.clear()

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
        except ArithmeticError:  # an instant or a duration past what a datetime holds
            return {"error": "an instant or duration out of range"}
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
        if request.to - request.from_ > timedelta(days=HORIZON_DAYS):
            raise ValueError(f"from and to lie more than {HORIZON_DAYS} days apart")
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
            while len(self._built) > MAX_INLINE:
                self._built.popitem(last=False)
        self._built.move_to_end(key)
        return self._built[key]


def rfc3339(moment: datetime) -> str:
    """UTC, with fractional seconds only when there are any."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")
