"""The canonical event shapes: the Python side of the contracts in ``schemas/``.

Every event shares one envelope (``event_id``, ``type``, ``schema_version``,
``occurred_at``, ``source``) and carries its payload under ``data``. The JSON
Schema files in ``schemas/`` are generated from these models by
``python -m slawatch_common.schemagen`` and a contract test fails when the two
drift apart, so a change here is a change of the published contract.

``event_id`` is the idempotency key: every consumer deduplicates by it, so a
producer that retries must reuse it.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Literal[1] = 1

Identifier = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=500)]

IDENTIFIER_MAX = 200


def bounded_id(text: str, limit: int = IDENTIFIER_MAX) -> str:
    """``text`` itself when it fits ``limit`` characters, else its head and a hash of the
    whole: an id derived from event fields (a clock id, an event id, a dedup key) always
    fits its own contract, and the same input always gives the same id."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{text[: limit - len(digest) - 1]}~{digest}"


class Priority(StrEnum):
    """P1 (highest) to P5 (lowest), from the urgency × impact matrix."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"
    P5 = "P5"


class Metric(StrEnum):
    """The kind of SLA clock: a ticket's (response, resolution, update), or a contract's
    availability error budget (a group of monitored services in one period)."""

    RESPONSE = "response"
    RESOLUTION = "resolution"
    UPDATE = "update"
    AVAILABILITY = "availability"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(_Model):
    """Fields every event carries."""

    event_id: Identifier = Field(description="Idempotency key: consumers drop a repeated event_id.")
    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Version of this schema."
    )
    occurred_at: AwareDatetime = Field(
        description="When it happened at the source (RFC 3339 with offset); clocks use this time."
    )
    source: Identifier = Field(
        description="The emitting system: a ticketing system's name or a slawatch service."
    )


# --- ticket events ---------------------------------------------------------


class Person(_Model):
    """Someone a notification can reach."""

    id: Identifier
    name: Name | None = None
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)] | None = None
    phone: Annotated[str, Field(pattern=r"^\+?[0-9 ()-]{3,32}$")] | None = None


RATING_SCALE_MAX = 1_000_000.0
"""The largest scale a rating may be given on."""


class Rating(_Model):
    """A customer's satisfaction with a ticket: ``score`` on a scale from 0 to ``scale_max``.

    Scales differ by source (Zendesk good/bad is 1/0 of 1, Jira Service
    Management 1-5 stars of 5, GLPI 0-5 of 5); ``score / scale_max`` is the
    satisfaction as a fraction, comparable across sources.
    """

    score: float = Field(
        ge=0,
        strict=True,
        allow_inf_nan=False,
        description="The rating given, from 0 (least satisfied) up to scale_max.",
    )
    scale_max: float = Field(
        gt=0,
        le=RATING_SCALE_MAX,
        strict=True,
        allow_inf_nan=False,
        description="The best rating the source's scale allows (1 for good/bad, 5 for 1-5).",
    )

    @model_validator(mode="after")
    def _score_on_the_scale(self) -> Rating:
        if self.score > self.scale_max:
            raise PydanticCustomError(
                "score_above_scale",
                "score ({score}) is greater than scale_max ({scale_max})",
                {"score": self.score, "scale_max": self.scale_max},
            )
        return self


class Ticket(_Model):
    """The ticket as the source knows it at ``occurred_at``; absent fields are unchanged."""

    id: Identifier = Field(description="The ticket's id in its source system.")
    priority: Priority | None = None
    status: Identifier | None = Field(
        default=None, description="The source's status name; policies map statuses to pauses."
    )
    customer: Identifier | None = None
    service: Identifier | None = None
    type: Identifier | None = Field(default=None, description="incident, service_request, ...")
    urgency: Identifier | None = Field(
        default=None, description="With impact: gives the priority through the policy's matrix."
    )
    impact: Identifier | None = None
    title: Name | None = None
    assignee: Person | None = None
    group: Identifier | None = Field(default=None, description="The assigned support group.")
    rating: Rating | None = Field(
        default=None,
        description="The customer's satisfaction rating; carried by ticket.rated (only).",
    )


TicketEventType = Literal[
    "ticket.created",
    "ticket.updated",
    "ticket.priority_changed",
    "ticket.status_changed",
    "ticket.assigned",
    "ticket.responded",  # an agent's public reply: the first answers, each re-arms updates
    "ticket.resolved",
    "ticket.reopened",
    "ticket.closed",
    "ticket.rated",  # a customer rated the ticket: data.rating carries it
]

RATED: Literal["ticket.rated"] = "ticket.rated"

# ``data.rating`` exactly on ``ticket.rated``, in the schema as in the validator below.
_RATING_BY_TYPE: dict[str, Any] = {
    "if": {"properties": {"type": {"const": RATED}}, "required": ["type"]},
    "then": {
        "properties": {
            "data": {"required": ["rating"], "properties": {"rating": {"not": {"type": "null"}}}}
        }
    },
    "else": {"properties": {"data": {"properties": {"rating": {"type": "null"}}}}},
}


class TicketEvent(Envelope):
    """A change of a ticket in a ticketing system. Kafka key: ``source:ticket.id``.

    ``ticket.rated`` carries the customer's rating in ``data.rating``; no other
    type carries one."""

    model_config = ConfigDict(json_schema_extra=_RATING_BY_TYPE)

    type: TicketEventType
    data: Ticket

    @field_validator("data")
    @classmethod
    def _rating_only_when_rated(cls, data: Ticket, info: ValidationInfo) -> Ticket:
        type_ = info.data.get("type")
        if type_ == RATED and data.rating is None:
            raise PydanticCustomError(
                "rating_missing", "a ticket.rated event needs data.rating (the customer's rating)"
            )
        if type_ is not None and type_ != RATED and data.rating is not None:
            raise PydanticCustomError(
                "rating_unexpected",
                "data.rating is carried by ticket.rated only, not by {type}",
                {"type": type_},
            )
        return data

    @property
    def key(self) -> str:
        return f"{self.source}:{self.data.id}"


# --- monitoring events -----------------------------------------------------


class Alert(_Model):
    """An alert from monitoring, about one service."""

    service: Identifier = Field(description="The monitored service the alert is about.")
    name: Name = Field(description="The alert rule's name.")
    fingerprint: Identifier = Field(description="Stable identity of this alert instance.")
    severity: Identifier | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class MonitoringEvent(Envelope):
    """An alert firing or resolved. Kafka key: ``data.service``."""

    type: Literal["monitor.alert_firing", "monitor.alert_resolved"]
    data: Alert

    @property
    def key(self) -> str:
        return self.data.service


# --- SLA events --------------------------------------------------------------


class TicketRef(_Model):
    """The ticket an SLA event is about, as the engine last saw it."""

    source: Identifier
    id: Identifier
    priority: Priority
    title: Name | None = None
    customer: Identifier | None = None
    service: Identifier | None = None
    assignee: Person | None = None
    group: Identifier | None = None


class ClockState(_Model):
    """An SLA clock at the instant of the event."""

    clock_id: Identifier = Field(description="source:ticket_id:metric")
    metric: Metric
    policy: Identifier
    escalation: Identifier | None = Field(
        default=None, description="The escalation chain the policy names, if any."
    )
    target_seconds: Annotated[int, Field(ge=0)]
    business_seconds_used: Annotated[int, Field(ge=0)]
    started_at: AwareDatetime
    deadline: AwareDatetime | None = Field(
        default=None, description="When the target is reached; null while paused."
    )
    cycle: Annotated[int, Field(ge=1)] = Field(
        default=1, description="Counts restarts: a reopen in restart mode, an update re-armed."
    )


SlaEventType = Literal[
    "sla.warning",
    "sla.breach",
    "sla.met",
    "sla.paused",
    "sla.resumed",
    "sla.cancelled",
    "sla.retracted",
]


class SlaData(_Model):
    ticket: TicketRef
    clock: ClockState
    stage: Identifier | None = Field(
        default=None,
        description="warning:<percent>, warning:<seconds>s-before or breach: the stage of "
        "sla.warning and sla.breach, or the stage an sla.retracted withdraws.",
    )
    threshold_percent: Annotated[int, Field(ge=1, le=100)] | None = None


class SlaEvent(Envelope):
    """A clock's transition, emitted by the SLA engine. Kafka key: ``source:ticket_id``."""

    type: SlaEventType
    data: SlaData

    @property
    def key(self) -> str:
        return f"{self.data.ticket.source}:{self.data.ticket.id}"


# --- notification records --------------------------------------------------


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    DINGTALK = "dingtalk"
    WECOM = "wecom"
    FEISHU = "feishu"
    SLACK = "slack"
    WEBHOOK = "webhook"


class Notification(_Model):
    notification_id: Identifier = Field(
        description="The dedup key: clock[#cycle]:stage[.g<generation>]:step[.r<repeat>]"
        ":recipient:channel."
    )
    sla_event_id: Identifier
    clock_id: Identifier
    stage: Identifier
    ticket_source: Identifier
    ticket_id: Identifier
    recipient: Identifier
    channel: Channel
    address: Annotated[
        str,
        Field(
            min_length=1,
            max_length=320,
            description="A keyed hash of the recipient's normalised address: 'hmac-sha256:' "
            "and 16 hex digits (HMAC-SHA256 keyed from the notifier's ack secret); never the "
            "address itself.",
            examples=["hmac-sha256:3f2a9c0d81b4e6a7"],
        ),
    ]
    attempts: Annotated[int, Field(ge=1)]
    error: Annotated[str, Field(max_length=2000)] | None = None
    digest_id: Identifier | None = Field(
        None,
        description="notification.folded: the digest that speaks for it "
        "(its own record has this id as notification_id).",
    )


class NotificationRecord(Envelope):
    """The outcome of one notification, emitted by the notifier. Key: ``source:ticket_id``.

    ``notification.folded``: over its recipient's rate limit, it went out as a
    line of a digest instead of alone (``data.digest_id``)."""

    type: Literal["notification.sent", "notification.failed", "notification.folded"]
    data: Notification

    @property
    def key(self) -> str:
        return f"{self.data.ticket_source}:{self.data.ticket_id}"


# --- compliance reports ----------------------------------------------------


class ReportDue(_Model):
    """A contract's report for one period, to be sent to the people the contract names."""

    contract: Identifier
    customer: Name = Field(description="The contract's customer, for the mail's subject.")
    period: Annotated[str, Field(min_length=4, max_length=40)] = Field(
        description="The period's label: 2026-11 (a month), 2026-Q4 (a quarter), 2026 (a year)."
    )
    start: AwareDatetime = Field(description="The period's first instant.")
    end: AwareDatetime = Field(description="The instant after the period (half-open).")
    as_of: AwareDatetime = Field(
        description="The instant the report is judged at (when it was issued): every fetch of "
        "its documents asks for this instant, so each mail of it shows the same figures."
    )
    review: Literal["monthly", "quarterly", "yearly"]
    language: Literal["en", "zh-CN"]
    report_to: list[Identifier] = Field(
        max_length=100,
        description="The contract's report_to when it was issued, for the record: the "
        "notifier mails the people its own configuration names for the contract.",
    )
    issue: Identifier = Field(
        description="Which issue of the period this is: ``scheduled`` (once per contract "
        "and period), or ``manual:<id>`` for one issued by hand."
    )


class ReportEvent(Envelope):
    """A report that falls due, emitted by the SLA engine. Kafka key: the contract."""

    type: Literal["report.due"]
    data: ReportDue

    @property
    def key(self) -> str:
        return self.data.contract


# --- unions ----------------------------------------------------------------

InboundEvent = Annotated[TicketEvent | MonitoringEvent, Field(discriminator="type")]
"""What ingest accepts on ``POST /v1/events``."""

Event = Annotated[
    TicketEvent | MonitoringEvent | SlaEvent | NotificationRecord | ReportEvent,
    Field(discriminator="type"),
]

INBOUND_ADAPTER: TypeAdapter[TicketEvent | MonitoringEvent] = TypeAdapter(InboundEvent)
EVENT_ADAPTER: TypeAdapter[
    TicketEvent | MonitoringEvent | SlaEvent | NotificationRecord | ReportEvent
] = TypeAdapter(Event)

CONTRACTS: dict[str, type[Envelope]] = {
    "ticket-event": TicketEvent,
    "monitoring-event": MonitoringEvent,
    "sla-event": SlaEvent,
    "notification-record": NotificationRecord,
    "report-event": ReportEvent,
}
"""Schema file stem → model; ``schemas/<stem>.schema.json`` is generated from it."""
