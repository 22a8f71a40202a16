"""Escalations as pure decisions: what each event, ack and due step does (fake ``now``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from notifier.factories import ESCALATING, NOW, STARTED, sla_event
from slawatch_notifier.config import NotifierConfig, parse_config
from slawatch_notifier.escalation import (
    Escalation,
    Fired,
    Firing,
    Reason,
    ScheduledStep,
    Status,
    Transition,
    acknowledge,
    fire_scheduled,
    notification_id,
    on_event,
    step_key,
)
from slawatch_notifier.targets import SkipReason

BREACH_AT = STARTED + timedelta(seconds=900)


@pytest.fixture
def config() -> NotifierConfig:
    return parse_config(ESCALATING)


def _apply(
    config: NotifierConfig, state: Escalation | None, event_args: dict[str, object]
) -> Transition:
    return on_event(state, sla_event(**event_args), config.escalations, NOW)  # type: ignore[arg-type]


def _breached(config: NotifierConfig, chain: str = "tiered") -> Escalation:
    state = _apply(config, None, {"stage": "breach", "escalation": chain}).state
    assert state is not None
    return state


def test_the_first_warning_starts_the_escalation_and_snapshots_its_chain(
    config: NotifierConfig,
) -> None:
    first = _apply(config, None, {"stage": "warning:50", "escalation": "tiered"})
    assert first.changed
    assert first.state is not None
    assert (first.state.key, first.state.status) == (("jira:OPS-42:response", 1), Status.ACTIVE)
    assert first.state.chain.name == "tiered"
    assert first.state.chain.steps == config.escalations["tiered"]
    assert first.firings == (Firing(0, "warning:50"),)
    assert first.schedule == ()
    # the next warning uses the stored snapshot, even if the config changed meanwhile
    emptied = config.model_copy(update={"escalations": {}})
    again = on_event(
        first.state, sla_event("warning:75", escalation="tiered"), emptied.escalations, NOW
    )
    assert (again.changed, again.firings) == (False, (Firing(0, "warning:75"),))


def test_no_chain_or_an_unknown_chain_starts_nothing(config: NotifierConfig) -> None:
    none = _apply(config, None, {"stage": "breach", "escalation": None})
    unknown = _apply(config, None, {"stage": "breach", "escalation": "vip"})
    assert (none.state, none.skipped[0].reason) == (None, SkipReason.NO_CHAIN)
    assert (unknown.state, unknown.skipped[0].reason) == (None, SkipReason.UNKNOWN_CHAIN)


def test_a_breach_fires_its_immediate_steps_and_schedules_the_waiting_one(
    config: NotifierConfig,
) -> None:
    breach = _apply(config, None, {"stage": "breach", "escalation": "tiered"})
    assert breach.firings == (Firing(1, "breach"),)
    (waiting,) = breach.schedule
    assert (waiting.step, waiting.repeat, waiting.due_at) == (
        2,
        0,
        BREACH_AT + timedelta(seconds=1),
    )
    assert waiting.id == "jira:OPS-42:response:breach:2"


def test_a_redelivered_breach_asks_for_the_same_keys_and_changes_nothing(
    config: NotifierConfig,
) -> None:
    first = _apply(config, None, {"stage": "breach", "escalation": "tiered"})
    again = _apply(config, first.state, {"stage": "breach", "escalation": "tiered"})
    assert not again.changed
    assert again.state == first.state
    assert (again.firings, again.schedule) == (first.firings, first.schedule)


def test_an_acknowledged_escalation_still_tells_later_stages_but_chases_nothing(
    config: NotifierConfig,
) -> None:
    warned = _apply(config, None, {"stage": "warning:50", "escalation": "tiered"}).state
    assert warned is not None
    acked = acknowledge(warned, "li.wei", NOW)
    assert acked is not None
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_at) == (
        Status.ACKNOWLEDGED,
        "li.wei",
        NOW,
    )
    assert acknowledge(acked, "someone else", NOW) is None  # idempotent: the first ack stands
    breach = _apply(config, acked, {"stage": "breach", "escalation": "tiered"})
    assert breach.firings == (Firing(1, "breach"),)
    assert breach.schedule == ()
    assert breach.state is not None
    assert breach.state.status is Status.ACKNOWLEDGED


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [
        ("sla.met", Reason.MET),
        ("sla.cancelled", Reason.CANCELLED),
        ("sla.retracted", Reason.RETRACTED),
    ],
)
def test_met_cancelled_and_retracted_stop_the_escalation(
    config: NotifierConfig, event_type: str, reason: Reason
) -> None:
    state = _breached(config)
    stop = _apply(config, state, {"stage": "breach", "event_type": event_type, "occurred_at": NOW})
    assert stop.stop is reason
    assert stop.state is not None
    assert (stop.state.status, stop.state.reason) == (Status.STOPPED, reason)
    assert _apply(config, stop.state, {"stage": "breach", "event_type": event_type}).stop is None


def test_a_rebreach_after_a_retraction_is_a_new_generation_and_redelivery_is_not(
    config: NotifierConfig,
) -> None:
    first = _breached(config)
    retract = {"stage": "breach", "event_type": "sla.retracted", "occurred_at": NOW}
    withdrawn = _apply(config, first, retract).state
    rebreach_at = NOW + timedelta(minutes=5)
    second = {"stage": "breach", "event_id": "breach-2", "occurred_at": rebreach_at}
    again = _apply(config, withdrawn, second)
    assert again.state is not None
    assert (again.state.generation, again.state.status) == (1, Status.ACTIVE)
    assert again.firings == (Firing(1, "breach", generation=1),)
    assert again.schedule[0].id == "jira:OPS-42:response:breach.g1:2"
    # the whole history redelivered, in order, changes nothing any more
    state = again.state
    for args in ({"stage": "breach"}, retract, second):
        redelivered = _apply(config, state, args)  # type: ignore[arg-type]
        assert redelivered.state == state
        assert redelivered.stop is None
        assert all(f.generation == 1 for f in redelivered.firings)


def test_a_due_step_fires_only_while_its_escalation_is_active(config: NotifierConfig) -> None:
    state = _breached(config)
    row = ScheduledStep("jira:OPS-42:response", 1, 0, 2, 0, BREACH_AT + timedelta(seconds=1))
    assert fire_scheduled(state, row, NOW) == Fired(Firing(2, "breach", scheduled=True), None)
    acked = acknowledge(state, "zhao.lei", NOW)
    assert acked is not None
    assert fire_scheduled(acked, row, NOW) is Reason.ACKNOWLEDGED
    older = replace(row, generation=0)
    assert fire_scheduled(replace(state, generation=1), older, NOW) is Reason.SUPERSEDED


def test_repeats_follow_each_other_and_catch_up_after_an_outage(config: NotifierConfig) -> None:
    state = _breached(config, "chasing")
    breach = _apply(config, None, {"stage": "breach", "escalation": "chasing"})
    assert breach.firings == (Firing(0, "breach"),)  # repeat 0 is immediate
    first, waiting = breach.schedule
    assert (first.step, first.repeat, first.due_at) == (0, 1, BREACH_AT + timedelta(minutes=10))
    assert (waiting.step, waiting.repeat, waiting.due_at) == (
        1,
        0,
        BREACH_AT + timedelta(minutes=30),
    )
    on_time = fire_scheduled(state, first, first.due_at)
    assert isinstance(on_time, Fired)
    assert on_time.firing == Firing(0, "breach", repeat=1, scheduled=True)
    assert on_time.next == replace(first, repeat=2, due_at=BREACH_AT + timedelta(minutes=20))
    late = fire_scheduled(state, first, BREACH_AT + timedelta(hours=3))
    assert isinstance(late, Fired)
    assert late.next is not None
    assert late.next.repeat == 2  # the last one, once, not every missed one
    last = fire_scheduled(state, late.next, NOW)
    assert isinstance(last, Fired)
    assert last.next is None


def test_keys_carry_cycle_stage_generation_step_repeat_recipient_channel() -> None:
    assert step_key("jira:OPS-42:response", "breach", 2) == "jira:OPS-42:response:breach:2"
    assert (
        notification_id(
            "jira:OPS-42:response",
            "breach",
            "wang.fang",
            "sms",
            step=2,
            cycle=3,
            repeat=1,
            generation=2,
        )
        == "jira:OPS-42:response#3:breach.g2:2.r1:wang.fang:sms"
    )
