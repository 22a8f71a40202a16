"""Routing: which notifications one SLA event asks for. Pure; no I/O, no clock.

For ``sla.warning`` and ``sla.breach`` events the chain named by
``data.clock.escalation`` is looked up; every rule whose ``on`` matches the
event's stage contributes its targets, each resolved to a recipient id, a
channel and an address. The notification id ``clock_id:stage:recipient:channel``
(``clock_id#cycle`` from a clock's second cycle on)
is the dedup key: the same stage of the same clock reaches the same person on
the same channel at most once, however often the event arrives.

Targets that cannot be reached (no assignee, no address) and events whose chain
is missing are returned as ``Skip`` values for the caller to log and count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from slawatch_common.events import Channel, SlaEvent
from slawatch_notifier.config import ASSIGNEE, NotifierConfig, Rule, Target, address_of

NOTIFYING_TYPES = frozenset({"sla.warning", "sla.breach"})
"""Event types the notifier acts on; every other SLA event is ignored."""

_WARNING_STAGE = re.compile(r"^warning:([1-9][0-9]?|100)$")


class UnroutableEventError(ValueError):
    """A warning or breach event whose stage is missing or contradicts its type."""


class SkipReason(StrEnum):
    NO_CHAIN = "no_chain"
    UNKNOWN_CHAIN = "unknown_chain"
    NO_ASSIGNEE = "no_assignee"
    NO_ADDRESS = "no_address"


@dataclass(frozen=True, slots=True)
class Skip:
    """Something the event asked for that cannot be done, and why."""

    reason: SkipReason
    detail: str


@dataclass(frozen=True, slots=True)
class PlannedNotification:
    """One message to one recipient on one channel, with the event it is about."""

    notification_id: str
    stage: str
    recipient: str
    recipient_name: str | None
    channel: Channel
    address: str
    event: SlaEvent


@dataclass(frozen=True, slots=True)
class Route:
    notifications: tuple[PlannedNotification, ...] = ()
    skipped: tuple[Skip, ...] = ()


def notification_id(
    clock_id: str, stage: str, recipient: str, channel: Channel, cycle: int = 1
) -> str:
    """The dedup key; a clock's later cycles (a restart) are told again, so they count."""
    clock = clock_id if cycle == 1 else f"{clock_id}#{cycle}"
    return f"{clock}:{stage}:{recipient}:{channel}"


def stage_of(event: SlaEvent) -> str:
    """The stage of a warning or breach event; ``UnroutableEventError`` if it does not fit."""
    stage = event.data.stage or ""
    if event.type == "sla.breach":
        fits = stage == "breach"
    else:
        fits = event.type == "sla.warning" and _WARNING_STAGE.match(stage) is not None
    if not fits:
        raise UnroutableEventError(f"{event.type} with stage {event.data.stage!r}")
    return stage


def route(event: SlaEvent, config: NotifierConfig) -> Route:
    """The notifications ``event`` asks for under ``config``, deduplicated by id, in rule order.

    Raises ``UnroutableEventError`` for a warning/breach event without a proper stage.
    Callers pass only ``NOTIFYING_TYPES``.
    """
    stage = stage_of(event)
    chain = event.data.clock.escalation
    if chain is None:
        return Route(skipped=(Skip(SkipReason.NO_CHAIN, event.data.clock.clock_id),))
    rules = config.escalations.get(chain)
    if rules is None:
        return Route(skipped=(Skip(SkipReason.UNKNOWN_CHAIN, chain),))
    planned: dict[str, PlannedNotification] = {}
    skipped: list[Skip] = []
    for target in _targets(rules, stage):
        resolved = _resolve(target, event, stage, config)
        if isinstance(resolved, Skip):
            skipped.append(resolved)
        else:
            planned.setdefault(resolved.notification_id, resolved)
    return Route(tuple(planned.values()), tuple(skipped))


def _targets(rules: tuple[Rule, ...], stage: str) -> Iterator[Target]:
    for rule in rules:
        if rule.applies_to(stage):
            yield from rule.notify


def _resolve(
    target: Target, event: SlaEvent, stage: str, config: NotifierConfig
) -> PlannedNotification | Skip:
    person = event.data.ticket.assignee if target.to == ASSIGNEE else config.people[target.to]
    if person is None:
        return Skip(SkipReason.NO_ASSIGNEE, f"{event.key}: no assignee for {target.via}")
    address = address_of(person, target.via)
    if address is None:
        return Skip(SkipReason.NO_ADDRESS, f"{event.key}: {person.id} has no {target.via} address")
    return PlannedNotification(
        notification_id=notification_id(
            event.data.clock.clock_id, stage, person.id, target.via, event.data.clock.cycle
        ),
        stage=stage,
        recipient=person.id,
        recipient_name=person.name,
        channel=target.via,
        address=address,
        event=event,
    )
