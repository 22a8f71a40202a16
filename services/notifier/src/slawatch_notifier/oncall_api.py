"""HTTP view of the on-call schedules: who is on call now, or at a given instant.

    GET /v1/oncall                  every schedule, sorted by name
    GET /v1/oncall/{schedule}       one schedule; 404 names the known ones

Both take ``?at=<ISO 8601 instant with offset>`` (default: the injected
``now``); a naive or malformed ``at`` is a 422 whose ``loc`` is
``["query", "at"]``. An unencoded ``+`` in the offset arrives as a space
(``?at=2024-03-01T09:00:00+08:00`` typed into a browser or curl), so a space
before the offset is read as ``+``. All instants in responses are UTC.
Read-only and pure apart from calling ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, BeforeValidator

from slawatch_common.auth import Scope, TokenBook
from slawatch_notifier.oncall import Schedule, on_call

_SPACED_OFFSET = re.compile(r"^(\S+) (\d{2}(:?\d{2})?)$")


def _plus_from_space(value: Any) -> Any:
    if isinstance(value, str) and (match := _SPACED_OFFSET.match(value)):
        return f"{match[1]}+{match[2]}"
    return value


Instant = Annotated[
    AwareDatetime | None,
    BeforeValidator(_plus_from_space),
    Query(
        description="The instant to ask about, ISO 8601 with an offset "
        "(e.g. 2024-03-01T09:00:00+08:00); default now.",
    ),
]


class OnCallView(BaseModel):
    """Who is on call in one schedule; every field but the first two is null when nobody is."""

    schedule: str
    at: datetime
    person: str | None
    since: datetime | None
    until: datetime | None
    source: str | None


class OnCallList(BaseModel):
    at: datetime
    schedules: list[OnCallView]


class UnknownSchedule(BaseModel):
    detail: str
    known: list[str]


def router(
    schedules: Mapping[str, Schedule], now: Callable[[], datetime], tokens: TokenBook
) -> APIRouter:
    """The router serving ``GET /v1/oncall`` and ``GET /v1/oncall/{schedule}`` (a token
    with the scope ``oncall:read``)."""
    api = APIRouter(tags=["on-call"], dependencies=[Depends(tokens.require(Scope.ONCALL_READ))])

    @api.get("/v1/oncall", response_model=OnCallList, summary="Who is on call in every schedule")
    async def everyone(at: Instant = None) -> OnCallList:
        moment = _moment(at, now)
        views = [_view(name, schedules[name], moment) for name in sorted(schedules)]
        return OnCallList(at=moment, schedules=views)

    @api.get(
        "/v1/oncall/{schedule}",
        response_model=OnCallView,
        responses={status.HTTP_404_NOT_FOUND: {"model": UnknownSchedule}},
        summary="Who is on call in one schedule",
    )
    async def one(schedule: str, at: Instant = None) -> OnCallView | JSONResponse:
        found = schedules.get(schedule)
        if found is None:
            unknown = UnknownSchedule(
                detail=f"unknown schedule {schedule!r}", known=sorted(schedules)
            )
            return JSONResponse(unknown.model_dump(), status_code=status.HTTP_404_NOT_FOUND)
        return _view(schedule, found, _moment(at, now))

    return api


def _moment(at: datetime | None, now: Callable[[], datetime]) -> datetime:
    moment = at if at is not None else now()
    if moment.utcoffset() is None:  # a broken clock, not a bad request
        raise ValueError(f"now() must return an aware datetime, got {moment.isoformat()}")
    return moment.astimezone(UTC)


def _view(name: str, schedule: Schedule, at: datetime) -> OnCallView:
    answer = on_call(schedule, at)
    if answer is None:
        return OnCallView(schedule=name, at=at, person=None, since=None, until=None, source=None)
    return OnCallView(
        schedule=name,
        at=at,
        person=answer.person,
        since=answer.since,
        until=answer.until,
        source=answer.source,
    )
