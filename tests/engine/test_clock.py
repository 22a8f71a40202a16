"""The clock state machine: pure transitions with explicit instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slawatch_common.events import Metric
from slawatch_engine import clock as clocks
from slawatch_engine.calendar import always_open
from slawatch_engine.clock import Clock, State

CAL = always_open()
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_clock(target: int = 100, paused: bool = False) -> Clock:
    return clocks.start(
        clock_id="jira:1:response",
        ticket_key="jira:1",
        partition=0,
        metric=Metric.RESPONSE,
        policy="p",
        escalation=None,
        calendar="always",
        target_seconds=target,
        thresholds=(50, 75, 90),
        at=T0,
        paused=paused,
    )


def test_stages_are_due_at_their_percent_of_the_target() -> None:
    clock = new_clock()
    assert [clocks.due_at(clock, i, CAL) for i in range(4)] == [at(50), at(75), at(90), at(100)]
    assert clocks.deadline(clock, CAL) == at(100)


def test_fire_emits_each_stage_once() -> None:
    clock = new_clock()
    clock, stage = clocks.fire(clock, at(49.9), CAL)
    assert stage is None
    clock, stage = clocks.fire(clock, at(50), CAL)
    assert stage is not None
    assert (stage.name, stage.crossed_at) == ("warning:50", at(50))
    again, repeat = clocks.fire(clock, at(60), CAL)
    assert repeat is None
    assert again == clock


def test_fire_after_a_gap_emits_only_the_highest_crossed_stage() -> None:
    clock, stage = clocks.fire(new_clock(), at(120), CAL)
    assert stage is not None
    assert (stage.name, stage.crossed_at, clock.breached) == ("breach", at(100), True)
    assert clocks.next_due(clock, CAL) is None


def test_pause_stops_time_and_resume_moves_the_deadline() -> None:
    clock = clocks.pause(new_clock(), at(30), CAL)
    assert (clock.state, clock.used_seconds) == (State.PAUSED, 30)
    assert clocks.deadline(clock, CAL) is None
    clock = clocks.resume(clock, at(1030))
    assert clocks.deadline(clock, CAL) == at(1100)
    assert clocks.used_at(clock, at(1040), CAL) == 40


def test_stop_before_the_deadline_is_met_after_it_is_breached() -> None:
    met = clocks.stop(new_clock(), at(99), CAL)
    assert (met.state, met.breached, met.used_seconds) == (State.STOPPED, False, 99)
    late = clocks.stop(new_clock(), at(101), CAL)
    assert late.breached


def test_transitions_that_do_not_apply_change_nothing() -> None:
    stopped = clocks.stop(new_clock(), at(10), CAL)
    assert clocks.stop(stopped, at(20), CAL) is stopped
    assert clocks.pause(stopped, at(20), CAL) is stopped
    assert clocks.resume(new_clock(), at(5)).state is State.RUNNING


def test_reopen_continues_without_the_stopped_interval() -> None:
    stopped = clocks.stop(new_clock(), at(40), CAL)
    reopened = clocks.reopen(stopped, at(500))
    assert clocks.deadline(reopened, CAL) == at(560)


def test_retarget_keeps_time_used_and_fired_stages() -> None:
    clock, _ = clocks.fire(new_clock(), at(60), CAL)
    shorter = clocks.retarget(clock, 70, at(60), CAL)
    assert shorter.used_seconds == 60
    assert shorter.next_stage == 1
    # 75 % of 70 s = 52.5 s: already crossed, fires at once on the next tick
    fired, stage = clocks.fire(shorter, at(60), CAL)
    assert stage is not None
    assert stage.name == "warning:75"
    assert fired.next_stage == 2


def test_a_late_event_never_makes_time_negative() -> None:
    clock = clocks.resume(clocks.pause(new_clock(), at(10), CAL), at(50))
    paused_in_the_past = clocks.pause(clock, at(20), CAL)
    assert paused_in_the_past.used_seconds == 10


def test_cancel_ends_an_open_clock() -> None:
    cancelled = clocks.cancel(new_clock(), at(10), CAL)
    assert cancelled.state is State.CANCELLED
    assert clocks.next_due(cancelled, CAL) is None
