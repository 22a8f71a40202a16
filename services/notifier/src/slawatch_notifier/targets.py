"""The ``to:`` of a step: who a target names. Pure; resolution is in ``routing.py``.

    assignee             the ticket's assignee: the configured person of the id the
                         event names, else as the source sent it (``routing.assignee_of``)
    assignee_group       the ticket's ``group``, looked up in ``notifier.groups``
    <person id>          a person of ``notifier.people``
    group:<id>           every member of a group, or the group's robot on a chat channel
    oncall:<schedule>    whoever the schedule has on call at the instant the step fires
    supervisor:<target>  the ``supervisor`` of the person the inner target resolves to
                         (nests: ``supervisor:supervisor:assignee``; never a group)

A target that reaches no one when a step fires (no assignee, nobody on call, a
person without the channel's address, an address the event gave that may not
be used) becomes a ``Skip`` with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ASSIGNEE = "assignee"
ASSIGNEE_GROUP = "assignee_group"
KINDS = "assignee, assignee_group, <person>, group:<id>, oncall:<schedule>, supervisor:<target>"


@dataclass(frozen=True, slots=True)
class Assignee:
    pass


@dataclass(frozen=True, slots=True)
class AssigneeGroup:
    pass


@dataclass(frozen=True, slots=True)
class PersonRef:
    person_id: str


@dataclass(frozen=True, slots=True)
class GroupRef:
    group_id: str


@dataclass(frozen=True, slots=True)
class OnCallRef:
    schedule: str


@dataclass(frozen=True, slots=True)
class SupervisorOf:
    inner: Target


Target = Assignee | AssigneeGroup | PersonRef | GroupRef | OnCallRef | SupervisorOf


def parse_target(text: str) -> Target:
    """The target ``text`` names; ``ValueError`` saying what is wrong otherwise."""
    if text == ASSIGNEE:
        return Assignee()
    if text == ASSIGNEE_GROUP:
        return AssigneeGroup()
    kind, colon, rest = text.partition(":")
    if not colon:
        return PersonRef(text)
    if not rest:
        raise ValueError(f"{text!r} names no one after {kind}: (targets: {KINDS})")
    if kind == "group":
        return GroupRef(rest)
    if kind == "oncall":
        return OnCallRef(rest)
    if kind == "supervisor":
        inner = parse_target(rest)
        if isinstance(inner, GroupRef | AssigneeGroup):
            raise ValueError(f"{text!r}: a group has no supervisor; name a person")
        return SupervisorOf(inner)
    raise ValueError(f"unknown target kind {kind!r} in {text!r} (targets: {KINDS})")


class SkipReason(StrEnum):
    """Why a target (or a whole event) reaches no one; a metric label."""

    NO_CHAIN = "no_chain"
    UNKNOWN_CHAIN = "unknown_chain"
    NO_ASSIGNEE = "no_assignee"
    NO_GROUP = "no_group"
    UNKNOWN_GROUP = "unknown_group"
    NOBODY_ON_CALL = "nobody_on_call"
    NO_SUPERVISOR = "no_supervisor"
    UNKNOWN_TARGET = "unknown_target"
    NO_ADDRESS = "no_address"
    UNTRUSTED_SOURCE = "untrusted_source"
    """An address only the event carries, from a source not allowed to give addresses."""
    ADDRESS_NOT_ALLOWED = "address_not_allowed"
    """An address only the event carries, outside the allowed mail domains or phone prefixes."""


REFUSALS = frozenset({SkipReason.UNTRUSTED_SOURCE, SkipReason.ADDRESS_NOT_ALLOWED})
"""Skips that refuse an address an event gave: logged as warnings, kept as ``refused`` rows."""


@dataclass(frozen=True, slots=True)
class Skip:
    """Something a step asked for that cannot be done, and why."""

    reason: SkipReason
    detail: str

    @property
    def refusal(self) -> bool:
        """An address the event gave was refused (rather than nobody being there to reach)."""
        return self.reason in REFUSALS
