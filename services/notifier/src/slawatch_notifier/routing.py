"""Routing: who a firing step reaches, on which channel, at which address. Pure; ``now`` comes in.

A ``Firing`` (``escalation.py``) names a step of the snapshotted chain; each of
its targets (``targets.py``) is resolved against the current people, groups
and schedules at ``now``:

- a person, the assignee (``assignee_of``: the configured person of the
  id the event names, else as the source sent them), the person a schedule
  has on call, or a person's ``supervisor``: one notification each;
- a group: one per member on ``email``/``sms``, one to the group's robot on
  a chat channel (recipient ``group:<id>``).

Each notification carries the ``locale`` its words are in (``templates.py``):
the person's (for the assignee, the configured person's of the same id), the
group's for its robot, else the notifier's ``locale``.

Event data never chooses where a message goes. A configured person's
addresses win over the ones the event carries; an address only the event
carries is used only if ``notifier.event_addresses`` allows it (its source
trusted, the address inside the allow-lists). Otherwise it is *refused*: a
``Skip`` (``untrusted_source``, ``address_not_allowed``) whose detail names the
source and field and shows the address masked, and a planned notification
with ``refused`` set (``Route.refused``), which the store keeps as a
``refused`` row with that detail and never sends; the next channel of a
fallback list reaches the recipient straight away, as when an address is
missing.

Each notification's id is ``escalation.notification_id``, the dedup key; the
same step reaches one recipient on one channel once, even when two targets
resolve to the same person. Targets that reach no one are ``Skip`` values for
the caller to log and count.

Fallback (``via: [sms, email]``): every channel of the list is planned at
once. A recipient's first reachable channel is their notification; each later
one is a *standby* (``fallback_of`` = the id on the channel before it for the
same recipient), sent only if the one before ends ``failed`` or has been
failing for ``fallback_after`` while it is retried (``fallback.py``). A
recipient without an address for the first
channel is reached on the next one straight away. When a step reaches the
same recipient on the same channel both directly and as someone's fallback,
the direct one wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from slawatch_common.events import Channel, SlaEvent, TicketRef
from slawatch_notifier.addresses import mask
from slawatch_notifier.config import (
    MEMBER_CHANNELS,
    EventAddresses,
    Group,
    NotifierConfig,
    Notify,
    Person,
    address_field,
    address_of,
)
from slawatch_notifier.escalation import (
    ChainSnapshot,
    Firing,
    notification_id,
    on_event,
)
from slawatch_notifier.oncall import on_call
from slawatch_notifier.targets import (
    Assignee,
    AssigneeGroup,
    GroupRef,
    OnCallRef,
    PersonRef,
    Skip,
    SkipReason,
    SupervisorOf,
    Target,
)

__all__ = [
    "Assigned",
    "PlannedNotification",
    "Route",
    "Skip",
    "SkipReason",
    "assignee_of",
    "notification_id",
    "plan",
    "route",
]

Resolved = Person | Skip


@dataclass(frozen=True, slots=True)
class PlannedNotification:
    """One message to one recipient on one channel, with the event it is about."""

    notification_id: str
    firing: Firing
    cycle: int
    recipient: str
    recipient_name: str | None
    locale: str
    """The language the recipient reads (``messages.LANGUAGES``), defaults resolved."""
    channel: Channel
    address: str
    event: SlaEvent
    fallback_of: str | None = None
    """The notification this one stands in for if it fails; None: sent as soon as due."""
    refused: Skip | None = None
    """Why it is never sent: the address the event gave may not be used. Its ``address`` is
    then masked (``addresses.mask``)."""

    @property
    def stage(self) -> str:
        return self.firing.stage

    @property
    def clock_id(self) -> str:
        return self.event.data.clock.clock_id


@dataclass(frozen=True, slots=True)
class Route:
    notifications: tuple[PlannedNotification, ...] = ()
    skipped: tuple[Skip, ...] = ()
    refused: tuple[PlannedNotification, ...] = ()
    """Notifications whose address the event gave and may not be used (each also in
    ``skipped``), to be recorded, never sent."""


def plan(
    firings: Iterable[Firing],
    chain: ChainSnapshot,
    event: SlaEvent,
    config: NotifierConfig,
    now: datetime,
) -> Route:
    """The notifications of ``firings`` about ``event``, deduplicated by id, in chain order."""
    planned: dict[str, PlannedNotification] = {}
    refused: dict[str, PlannedNotification] = {}
    skipped: list[Skip] = []
    for firing in firings:
        for notify in chain.steps[firing.step].notify:
            found, missed = _fallback_chain(notify, firing, event, config, now)
            skipped += missed
            for result in found:
                if result.refused is not None:
                    refused.setdefault(result.notification_id, result)
                    continue
                known = planned.get(result.notification_id)
                if known is None or (known.fallback_of and not result.fallback_of):
                    planned[result.notification_id] = result
    kept = tuple(item for key, item in refused.items() if key not in planned)
    return Route(tuple(planned.values()), tuple(skipped), kept)


def _fallback_chain(
    notify: Notify, firing: Firing, event: SlaEvent, config: NotifierConfig, now: datetime
) -> tuple[list[PlannedNotification], list[Skip]]:
    """One target on each of its channels in order, each a standby for the one before.

    A refused notification (its ``refused`` set) is in the first list and its skip in the
    second; it stands in for nothing and nothing stands in for it."""
    found: list[PlannedNotification] = []
    skipped: list[Skip] = []
    latest: dict[str, str] = {}  # recipient → their notification on the latest channel
    unreached: dict[str, Skip] = {}  # recipient → why a channel could not reach them
    for position, via in enumerate(notify.via):
        for contact in _contacts(notify.target, via, event.data.ticket, config, now):
            if isinstance(contact, Skip):
                if position == 0:  # who a target names does not depend on the channel
                    skipped.append(contact)
                continue
            result = _notification(contact, firing, via, event, config.locale)
            if isinstance(result, Skip):
                unreached.setdefault(contact.id, result)
                continue
            if result.refused is not None:
                found.append(result)
                skipped.append(result.refused)
                continue
            found.append(replace(result, fallback_of=latest.get(result.recipient)))
            latest[result.recipient] = result.notification_id
    skipped += [skip for recipient, skip in unreached.items() if recipient not in latest]
    return found, skipped


def route(event: SlaEvent, config: NotifierConfig, now: datetime) -> Route:
    """The immediate notifications of a warning or breach as the first event of its escalation.

    ``UnroutableEventError`` for a warning/breach without a proper stage. For
    tools and tests; the service goes through ``escalation.on_event``.
    """
    transition = on_event(None, event, config.escalations, now)
    if transition.state is None:
        return Route(skipped=transition.skipped)
    return plan(transition.firings, transition.state.chain, event, config, now)


def _notification(
    found: Person | Contact, firing: Firing, via: Channel, event: SlaEvent, default_locale: str
) -> PlannedNotification | Skip:
    contact = found if isinstance(found, Contact) else Contact.of(found)
    refusal: Refusal | None = None
    address = contact.addresses.get(via)
    if address is None:
        refusal = contact.refused.get(via)
        if refusal is None:
            detail = f"{event.key}: {contact.id} has no {address_field(via)} for {via}"
            return Skip(SkipReason.NO_ADDRESS, detail)
        address = refusal.shown
    clock = event.data.clock
    return PlannedNotification(
        notification_id=notification_id(
            clock.clock_id,
            firing.stage,
            contact.id,
            via,
            step=firing.step,
            cycle=clock.cycle,
            repeat=firing.repeat,
            generation=firing.generation,
        ),
        firing=firing,
        cycle=clock.cycle,
        recipient=contact.id,
        recipient_name=contact.name,
        locale=contact.locale or default_locale,
        channel=via,
        address=address,
        event=event,
        refused=refusal.skip if refusal is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """An address the event gave that may not be used: why, and what of it may be shown."""

    skip: Skip
    shown: str
    """The address masked (``addresses.mask``)."""


@dataclass(frozen=True, slots=True)
class Contact:
    """A person, or a group's robot, with an address per channel; for the assignee, the
    addresses the event gave that were refused, per channel."""

    id: str
    name: str | None
    locale: str | None
    addresses: Mapping[Channel, str]
    refused: Mapping[Channel, Refusal] = field(default_factory=dict)

    @classmethod
    def of(cls, person: Person) -> Contact:
        addresses = {ch: a for ch in Channel if (a := address_of(person, ch)) is not None}
        return cls(person.id, person.name, person.locale, addresses)


def _contacts(
    target: Target, via: Channel, ticket: TicketRef, config: NotifierConfig, at: datetime
) -> list[Resolved | Contact]:
    match target:
        case Assignee():
            assigned = assignee_of(ticket, config)
            if assigned is None:
                return [Skip(SkipReason.NO_ASSIGNEE, f"{ticket.source}:{ticket.id}: no assignee")]
            return [replace(Contact.of(assigned.person), refused=assigned.refused)]
        case AssigneeGroup():
            if ticket.group is None:
                return [Skip(SkipReason.NO_GROUP, f"{ticket.source}:{ticket.id}: no group")]
            group = config.groups.get(ticket.group)
            if group is None:
                return [
                    Skip(SkipReason.UNKNOWN_GROUP, f"{ticket.source}:{ticket.id}: {ticket.group}")
                ]
            return _group(ticket.group, group, via, config)
        case GroupRef(group_id):
            group = config.groups.get(group_id)
            if group is None:
                return [Skip(SkipReason.UNKNOWN_TARGET, f"group {group_id!r} is not configured")]
            return _group(group_id, group, via, config)
        case _:
            return list(_people(target, ticket, config, at))


def _group(
    group_id: str, group: Group, via: Channel, config: NotifierConfig
) -> list[Resolved | Contact]:
    if via in MEMBER_CHANNELS:
        return [_person(member, config) for member in group.members]
    robot = group.robots.get(via)
    if robot is None:
        return [Skip(SkipReason.NO_ADDRESS, f"group {group_id!r} has no {via} robot")]
    return [Contact(f"group:{group_id}", group.name or group_id, group.locale, {via: robot})]


def _people(
    target: Target, ticket: TicketRef, config: NotifierConfig, at: datetime
) -> list[Resolved]:
    """The people a person-valued target stands for at ``at``."""
    match target:
        case Assignee():
            assigned = assignee_of(ticket, config)
            if assigned is None:
                return [Skip(SkipReason.NO_ASSIGNEE, f"{ticket.source}:{ticket.id}: no assignee")]
            return [assigned.person]
        case PersonRef(person_id):
            return [_person(person_id, config)]
        case OnCallRef(name):
            schedule = config.schedules.get(name)
            if schedule is None:
                return [Skip(SkipReason.UNKNOWN_TARGET, f"schedule {name!r} is not configured")]
            shift = on_call(schedule, at)
            if shift is None:
                return [Skip(SkipReason.NOBODY_ON_CALL, f"{name} at {at.isoformat()}")]
            return [_person(shift.person, config)]
        case SupervisorOf(inner):
            return [_supervisor(found, config) for found in _people(inner, ticket, config, at)]
        case _:  # groups never stand for one person (targets.parse_target refuses them)
            raise AssertionError(target)


def _person(person_id: str, config: NotifierConfig) -> Resolved:
    person = config.people.get(person_id)
    if person is None:
        return Skip(SkipReason.UNKNOWN_TARGET, f"person {person_id!r} is not configured")
    return person


def _supervisor(found: Resolved, config: NotifierConfig) -> Resolved:
    if isinstance(found, Skip):
        return found
    if found.supervisor is None:
        return Skip(SkipReason.NO_SUPERVISOR, f"{found.id} has no supervisor")
    return _person(found.supervisor, config)


@dataclass(frozen=True, slots=True)
class Assigned:
    """The ticket's assignee as routing reaches them, and the event's addresses it refused."""

    person: Person
    refused: Mapping[Channel, Refusal] = field(default_factory=dict)
    """Per channel: an address only the event carried that may not be used, and why."""


EVENT_CHANNELS = (Channel.EMAIL, Channel.SMS)
"""The channels whose address an event's assignee may carry (``email``, ``phone``)."""


def assignee_of(ticket: TicketRef, config: NotifierConfig) -> Assigned | None:
    """The ticket's assignee, None if the event names none.

    The configured person of the id the event names, with all their fields:
    their addresses win over the event's. An address the event carries that
    the configured person lacks (or every address, for an assignee who is
    not configured) is used only if ``config.event_addresses`` allows it: the
    ticket's source trusted and the address inside the allow-lists; else it
    is refused. An assignee who is not configured keeps the name the event
    gives.
    """
    sent = ticket.assignee
    if sent is None:
        return None
    known = config.people.get(sent.id)
    values: dict[str, Any]
    if known is not None:
        values = known.model_dump(exclude_none=True)
    else:
        values = sent.model_dump(include={"id", "name"}, exclude_none=True)
    refused: dict[Channel, Refusal] = {}
    filled = False
    for channel in EVENT_CHANNELS:
        name = address_field(channel)
        given: str | None = getattr(sent, name)
        if given is None or name in values:
            continue
        refusal = _refusal(ticket, sent.id, channel, given, config.event_addresses)
        if refusal is None:
            values[name] = given
            filled = True
        else:
            refused[channel] = refusal
    if known is not None and not filled:
        return Assigned(known, refused)
    return Assigned(Person.model_validate(values), refused)


def _refusal(
    ticket: TicketRef, who: str, channel: Channel, address: str, allowed: EventAddresses
) -> Refusal | None:
    """Why ``address`` (only the event carries it) may not be used; None if it may."""
    shown = mask(channel, address)
    name = address_field(channel)
    given = f"{ticket.source}:{ticket.id}: the {name} of {who} that the event gives ({shown})"
    if not allowed.trusts(ticket.source):
        return Refusal(
            Skip(
                SkipReason.UNTRUSTED_SOURCE,
                f"{given} is not used: source {ticket.source!r} is not in "
                "notifier.event_addresses.sources",
            ),
            shown,
        )
    if not allowed.admits(channel, address):
        listing = "mail_domains" if channel is Channel.EMAIL else "phone_prefixes"
        return Refusal(
            Skip(
                SkipReason.ADDRESS_NOT_ALLOWED,
                f"{given} is not used: outside notifier.event_addresses.{listing}",
            ),
            shown,
        )
    return None
