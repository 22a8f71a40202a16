"""The Kafka topics slawatch uses; their contracts are the files in ``schemas/topics/``.

| topic                 | key                 | value               | producer  |
|-----------------------|---------------------|---------------------|-----------|
| slawatch.tickets      | source:ticket_id    | TicketEvent         | ingest    |
| slawatch.monitoring   | service             | MonitoringEvent     | ingest    |
| slawatch.sla          | source:ticket_id    | SlaEvent            | sla-engine|
| slawatch.notifications| source:ticket_id    | NotificationRecord  | notifier  |
| slawatch.reports      | contract            | ReportEvent         | sla-engine|

A prefix (``SLAWATCH_TOPIC_PREFIX``) lets tests run in isolated topic sets on
one broker.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names under one prefix."""

    prefix: str = "slawatch"

    @property
    def tickets(self) -> str:
        return f"{self.prefix}.tickets"

    @property
    def monitoring(self) -> str:
        return f"{self.prefix}.monitoring"

    @property
    def sla(self) -> str:
        return f"{self.prefix}.sla"

    @property
    def notifications(self) -> str:
        return f"{self.prefix}.notifications"

    @property
    def reports(self) -> str:
        return f"{self.prefix}.reports"

    def all(self) -> tuple[str, ...]:
        return (self.tickets, self.monitoring, self.sla, self.notifications, self.reports)
