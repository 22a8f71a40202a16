"""The clock: a timeline replayed into state, crossings and what to emit. Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from slawatch_common.events import Metric
from slawatch_engine.calendar import always_open
from slawatch_engine.clock import BREACH, Clock, Entry, State, assess, replay, stage_percent

CAL = always_open()
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
STAGES = ("warning:50", "warning:75", "warning:900s-before")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def clock(*entries: Entry, target: int = 3600, fired: frozenset[str] = frozenset()) -> Clock:
    started = Clock(
        id="jira:1:response",
        ticket_key="jira:1",
        partition=0,
        metric=Metric.RESPONSE,
        policy="p",
        escalation=None,
        calendar="always",
        stages=STAGES,
        timeline=(Entry(T0, "start", target=target),),
        fired=fired,
    )
    for entry in entries:
        started = started.record(entry)
    return started


def test_stages_cross_at_their_percent_or_lead_time() -> None:
    view = replay(clock(), CAL)
    assert view.crossings == {
        "warning:50": at(1800),
        "warning:75": at(2700),
        "warning:900s-before": at(2700),
        BREACH: at(3600),
    }
    assert stage_percent("warning:900s-before", 3600) == 75


def test_each_stage_is_emitted_once_then_counted_done() -> None:
    c = clock()
    outcome = assess(c, replay(c, CAL), at(1800))
    assert outcome.emit == ("warning:50", at(1800))
    assert outcome.next_due == at(2700)
    c = replace(c, fired=outcome.fired(c.fired))
    again = assess(c, replay(c, CAL), at(1900))
    assert (again.emit, again.passed) == (None, ())


def test_after_a_gap_only_the_highest_crossed_stage_is_emitted() -> None:
    c = clock()
    outcome = assess(c, replay(c, CAL), at(4000))
    assert outcome.emit == (BREACH, at(3600))
    assert set(outcome.passed) == {*STAGES, BREACH}
    assert outcome.next_due is None


def test_a_pause_moves_the_deadline_by_its_length() -> None:
    view = replay(clock(Entry(at(600), "pause"), Entry(at(1800), "resume")), CAL)
    assert view.deadline == at(4800)
    paused = replay(clock(Entry(at(600), "pause")), CAL)
    assert (paused.state, paused.used, paused.deadline) == (State.PAUSED, 600, None)


def test_stopping_before_or_at_the_deadline_meets_it_after_breaches_it() -> None:
    met = replay(clock(Entry(at(3600), "stop")), CAL)
    late = replay(clock(Entry(at(3601), "stop")), CAL)
    assert (met.state, met.breached_by(at(9999)), late.breached_by(at(9999))) == (
        State.STOPPED,
        False,
        True,
    )


def test_reopen_modes() -> None:
    stopped = (Entry(at(1000), "stop"),)
    exclude = replay(clock(*stopped, Entry(at(5000), "reopen", mode="exclude")), CAL)
    include = replay(clock(*stopped, Entry(at(2000), "reopen", mode="include")), CAL)
    restart = replay(clock(*stopped, Entry(at(5000), "restart", target=3600)), CAL)
    assert exclude.deadline == at(5000 + 2600)
    assert include.deadline == at(3600)  # the resolved hour counted too
    assert (restart.deadline, restart.cycle) == (at(8600), 2)


def test_a_target_change_recalculates_from_the_start_keeping_pauses() -> None:
    c = clock(
        Entry(at(600), "pause"), Entry(at(1200), "resume"), Entry(at(1900), "retarget", target=2400)
    )
    view = replay(c, CAL)
    # 2400 s of business time from T0, the 600 s pause left out
    assert view.deadline == at(3000)
    # the half-way point (1200 s used) was crossed at +1800 s: due at once, dated then
    outcome = assess(c, view, at(1900))
    assert outcome.emit == ("warning:50", at(1800))


def test_a_late_stop_before_the_deadline_retracts_the_breach() -> None:
    breached = clock(fired=frozenset({*STAGES, BREACH}))
    late = breached.record(Entry(at(3000), "stop"))
    outcome = assess(late, replay(late, CAL), at(4000))
    assert outcome.retracted == (BREACH,)
    assert outcome.emit is None
    assert BREACH not in outcome.fired(late.fired)


def test_a_late_pause_pushes_a_future_deadline() -> None:
    c = clock(Entry(at(1000), "pause"))
    c = c.record(Entry(at(500), "pause")).record(Entry(at(700), "resume"))
    # timeline in time order: pause 500, resume 700, pause 1000 — used 500 + 300
    view = replay(c, CAL)
    assert [e.kind for e in c.timeline] == ["start", "pause", "resume", "pause"]
    assert (view.state, view.used) == (State.PAUSED, 800)


def test_cancel_ends_without_an_outcome() -> None:
    c = clock(Entry(at(4000), "cancel"))
    view = replay(c, CAL)
    assert view.state is State.CANCELLED
    outcome = assess(c, view, at(5000))
    assert (outcome.emit, outcome.next_due) == (None, None)
