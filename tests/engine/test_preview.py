"""The preview interface: requests in, deadlines and elapsed business time out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slawatch_engine.policy import load_policies
from slawatch_engine.preview import Previewer

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "slawatch.yaml"
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
OFFICE = {
    "timezone": "Asia/Shanghai",
    "weekly": {d: [["08:00", "18:30"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holiday_sets": ["CN"],
}


@pytest.fixture(scope="module")
def previewer() -> Previewer:
    return Previewer(load_policies(EXAMPLE).calendars)


def test_deadline_with_an_inline_calendar(previewer: Previewer) -> None:
    request = {"calendar": OFFICE, "start": "2026-09-30T16:00:00+08:00", "target_seconds": 28800}
    assert previewer.answer(request) == {"deadline": "2026-10-08T05:30:00Z"}


def test_deadline_with_a_named_calendar_and_a_pause(previewer: Previewer) -> None:
    request = {
        "calendar": {"name": "cn-office"},
        "start": "2026-11-26T09:00:00+08:00",
        "target_seconds": 7200,
        "pauses": [["2026-11-26T10:00:00+08:00", "2026-11-26T10:30:00+08:00"]],
    }
    assert previewer.answer(request) == {"deadline": "2026-11-26T03:30:00Z"}


def test_elapsed_business_seconds(previewer: Previewer) -> None:
    request = {
        "calendar": OFFICE,
        "from": "2026-09-30T16:00:00+08:00",
        "to": "2026-10-09T09:00:00+08:00",
    }
    assert previewer.answer(request) == {"business_seconds": 2.5 * 3600 + 10.5 * 3600 + 3600}


def test_working_days(previewer: Previewer) -> None:
    request = {
        "calendar": OFFICE,
        "start": "2026-09-30T16:00:00+08:00",
        "target_days": 1,
        "at": "end_of_day",
    }
    assert previewer.answer(request) == {"deadline": "2026-10-08T10:30:00Z"}


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"calendar": {"name": "nowhere"}, "start": T0, "target_seconds": 1}, "nowhere"),
        ({"calendar": OFFICE, "start": "2026-01-01T00:00:00", "target_seconds": 1}, "start"),
        ({"calendar": OFFICE, "start": T0, "target_seconds": -1}, "target_seconds"),
        ({"calendar": OFFICE, "start": T0}, "exactly one"),
        ({"calendar": {"timezone": "Mars/Base"}, "from": T0, "to": T1}, "time zone"),
        ({"calendar": OFFICE}, "either 'start'"),
        ([1], "JSON object"),
    ],
)  # fmt: skip
def test_a_bad_request_gets_an_error_in_its_place(
    previewer: Previewer, request_: Any, error: str
) -> None:
    answer = previewer.answer_all(request_)
    answer = answer[0] if isinstance(answer, list) else answer
    assert error in answer["error"]


def test_the_command_answers_an_array_in_order() -> None:
    requests = [
        {"calendar": OFFICE, "start": "2026-09-30T16:00:00+08:00", "target_seconds": 0},
        {"calendar": OFFICE, "start": "bad", "target_seconds": 0},
        {"calendar": {"always_open": True}, "from": T0, "to": "2026-01-01T01:00:00.5Z"},
    ]  # fmt: skip
    done = subprocess.run(
        [Path(sys.executable).parent / "slawatch-engine", "preview", "--config", str(EXAMPLE)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        check=True,
    )
    answers = json.loads(done.stdout)
    assert answers[0] == {"deadline": "2026-09-30T08:00:00Z"}
    assert "start" in answers[1]["error"]
    assert answers[2] == {"business_seconds": 3600.5}


def test_a_call_holds_at_most_a_hundred_requests() -> None:
    from slawatch_engine.preview import MAX_REQUESTS, TooManyRequestsError

    previewer = Previewer(configs=load_policies(EXAMPLE).calendar_configs)
    one = {"calendar": {"name": "cn-office"}, "from": T0, "to": T1}
    assert len(previewer.answer_all([one] * MAX_REQUESTS)) == MAX_REQUESTS
    with pytest.raises(TooManyRequestsError, match="at most 100 requests a call; this one has 101"):
        previewer.answer_all([one] * (MAX_REQUESTS + 1))


def test_a_request_is_bounded_in_pauses_and_span() -> None:
    previewer = Previewer(configs=load_policies(EXAMPLE).calendar_configs)
    pause = [T0, T1]
    many = {"calendar": {"name": "cn-office"}, "from": T0, "to": T1, "pauses": [pause] * 101}
    assert "pauses" in previewer.answer(many)["error"]
    century = {"calendar": {"name": "cn-office"}, "from": T0, "to": "2126-01-01T00:00:00Z"}
    assert previewer.answer(century) == {"error": "from and to lie more than 3660 days apart"}
    decade = {"calendar": {"name": "cn-office"}, "from": T0, "to": "2035-12-31T00:00:00Z"}
    assert "business_seconds" in previewer.answer(decade)


def test_previews_never_grow_the_engines_calendars_and_keep_their_own_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from slawatch_engine import preview

    book = load_policies(EXAMPLE)
    live = book.calendars["cn-office"]
    before = live.cached_days
    previewer = Previewer(configs=book.calendar_configs)
    monkeypatch.setattr(preview, "MAX_CACHED_DAYS", 1000)
    for year in range(2020, 2030):
        span = {
            "calendar": {"name": "cn-office"},
            "from": f"{year}-01-01T00:00:00Z",
            "to": f"{year}-12-31T00:00:00Z",
        }
        assert "business_seconds" in previewer.answer_all(span)
        assert previewer._named["cn-office"].cached_days <= 1000
    assert live.cached_days == before
    for n in range(preview.MAX_INLINE + 8):
        inline = {**OFFICE, "weekly": {"mon": [["08:00", f"{10 + n % 8}:{n:02d}"]]}}
        answer = previewer.answer({"calendar": inline, "from": T0, "to": T1})
        assert "business_seconds" in answer, answer
    assert len(previewer._built) == preview.MAX_INLINE


def test_numbers_and_instants_past_a_datetime_are_errors_in_their_place() -> None:
    previewer = Previewer(configs=load_policies(EXAMPLE).calendar_configs)
    answers = previewer.answer_all(
        [
            {"calendar": {"name": "cn-office"}, "start": T0, "target_seconds": 1e400},
            {"calendar": {"name": "cn-office"}, "start": "9999-12-31T00:00:00Z", "target_days": 5},
            {"calendar": {"name": "cn-office"}, "from": T0, "to": T1},
        ]
    )
    assert "target_seconds" in answers[0]["error"]
    assert "error" in answers[1]
    assert "business_seconds" in answers[2]
