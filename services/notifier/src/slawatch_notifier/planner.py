"""The planner: firings become stored-ready drafts (routed, rendered, with their ack link).

Pure given ``now``: ``routing.plan`` says who gets what (and in which
language), ``templates.render`` words it, ``acklink.AckLinks`` signs the
link that acknowledges the escalation on the recipient's behalf, and
``quiet_hours.deferral`` holds a warning to a person in their quiet hours
(theirs, else the notifier's default) until those end. A refused notification
(an address only the event gave that may not be used) becomes a draft with
no content, to be recorded as ``refused``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from slawatch_common.events import SlaEvent
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.config import NotifierConfig
from slawatch_notifier.escalation import ChainSnapshot, Firing
from slawatch_notifier.quiet_hours import QuietHours, deferral, is_person
from slawatch_notifier.routing import PlannedNotification, plan
from slawatch_notifier.store import Draft
from slawatch_notifier.targets import Skip
from slawatch_notifier.templates import Content, render

REFUSED_CONTENT = Content(subject="", text="")
"""What a refused notification keeps: nothing is worded for it, no ack link is signed."""


@dataclass(frozen=True, slots=True)
class Drafts:
    drafts: tuple[Draft, ...] = ()
    skipped: tuple[Skip, ...] = ()


@dataclass(frozen=True, slots=True)
class Planner:
    """The current directory (people, groups, schedules) and the link signer."""

    config: NotifierConfig
    links: AckLinks

    def drafts(
        self, firings: Iterable[Firing], chain: ChainSnapshot, event: SlaEvent, now: datetime
    ) -> Drafts:
        """The drafts of ``firings`` about ``event``, then those of the refused ones; targets
        that reach no one are skipped."""
        route = plan(firings, chain, event, self.config, now)
        drafts = tuple(
            Draft(p, render(p, self._link(p, now)), deferral(p.stage, self._quiet(p), now))
            for p in route.notifications
        )
        refused = tuple(Draft(p, REFUSED_CONTENT) for p in route.refused)
        return Drafts(drafts + refused, route.skipped)

    def _quiet(self, planned: PlannedNotification) -> QuietHours | None:
        if not is_person(planned.recipient):
            return None
        person = self.config.people.get(planned.recipient)
        own = person.quiet_hours if person is not None else None
        return own or self.config.quiet_hours

    def _link(self, planned: PlannedNotification, now: datetime) -> str:
        return self.links.url(planned.clock_id, planned.cycle, planned.recipient, now)
