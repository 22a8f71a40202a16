"""The configuration of one webhook source, as validated from ``ingest.sources.<name>``.

One model serves every kind of source; each kind uses the options that mean
something to it and refuses the others by name (``service_labels`` on a Jira
source is a mistake worth saying). Defaults per kind live in the kind's
module (``DEFAULTS``) and are merged in by ``slawatch_ingest.webhook_config``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from slawatch_common.events import RATING_SCALE_MAX, Identifier, Priority, TicketEventType
from slawatch_ingest.sources.paths import check_path

Kind = Literal[
    "jira", "zendesk", "zammad", "servicenow", "glpi", "alertmanager", "grafana", "generic"
]
KINDS: tuple[Kind, ...] = get_args(Kind)

PathSpec = Annotated[str, AfterValidator(check_path)]
"""A JSON pointer (``/a/b``) or a JSONPath (``$.a.b``) into the body."""

FieldName = Literal[
    "id",
    "status",
    "priority",
    "customer",
    "service",
    "type",
    "urgency",
    "impact",
    "title",
    "group",
    "assignee.id",
    "assignee.name",
    "assignee.email",
    "assignee.phone",
    "rating",
]
"""The canonical ticket fields a path can fill; ``rating`` only on ``ticket.rated`` (Jira, and
a mapping with ``rating_scale_max``)."""

EventRule = Literal[
    "ticket.created",
    "ticket.updated",
    "ticket.priority_changed",
    "ticket.status_changed",
    "ticket.assigned",
    "ticket.responded",
    "ticket.resolved",
    "ticket.reopened",
    "ticket.closed",
    "ticket.rated",
    "derive",
    "ignore",
]
"""What a source's event word means: a ticket event type, ``derive`` it from the
statuses (see ``generic``), or ``ignore`` the delivery."""


def event_type(rule: EventRule) -> TicketEventType | None:
    """``rule`` as a ticket event type; ``None`` for ``derive`` and ``ignore``."""
    return cast(TicketEventType, rule) if rule in get_args(TicketEventType) else None


_COMMON = frozenset(
    {"kind", "name", "enabled", "secret", "tokens", "basic_auth", "rate_limit", "max_body_bytes"}
)
_TICKETS = frozenset({"priorities", "statuses"})
_HMAC = frozenset({"signature_header", "timestamp_header", "replay_window_s"})
_APPLICABLE: dict[str, frozenset[str]] = {
    "jira": _COMMON | _TICKETS | {"fields"},
    "zendesk": _COMMON | _TICKETS | {"fields", "replay_window_s"},
    "zammad": _COMMON | _TICKETS | {"fields", "triggers"},
    "servicenow": _COMMON | _TICKETS | _HMAC | {"mapping"},
    "glpi": _COMMON | _TICKETS | {"mapping", "replay_window_s"},
    "generic": _COMMON | _TICKETS | _HMAC | {"mapping", "signature_scheme"},
    "alertmanager": (_COMMON - {"secret"}) | {"service_labels"},
    "grafana": _COMMON | _HMAC | {"service_labels"},
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Model):
    """A token bucket: ``burst`` requests at once, refilled at ``per_second``."""

    per_second: float = Field(20.0, gt=0)
    burst: int = Field(100, ge=1)


class Previous(_Model):
    """Where the body carries the values before the change, if it does."""

    status: PathSpec | None = None
    priority: PathSpec | None = None


class TicketMapping(_Model):
    """How a body the sender composes (ServiceNow, GLPI, anything) becomes a ticket event."""

    ticket_id: PathSpec
    occurred_at: tuple[PathSpec, ...] = Field(min_length=1)
    created_at: PathSpec | None = None
    event: PathSpec | None = None
    events: dict[str, EventRule] = Field(default_factory=dict)
    previous: Previous = Previous()
    delivery_id: PathSpec | None = None
    delivery_header: str | None = None
    fields: dict[FieldName, PathSpec] = Field(default_factory=dict)
    values: dict[FieldName, dict[str, str]] = Field(default_factory=dict)
    rating_scale_max: float | None = Field(
        None,
        gt=0,
        le=RATING_SCALE_MAX,
        allow_inf_nan=False,
        description="The best rating on the scale of ``fields.rating`` (5 for 1-5 stars).",
    )
    timezone: str = "UTC"

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("events", "values", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        # YAML reads `1: ticket.created` with an integer key; bodies compare as text.
        return _string_keys(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _rating_has_a_scale(self) -> TicketMapping:
        rating = "rating" in self.fields
        if rating and self.rating_scale_max is None:
            raise PydanticCustomError(
                "rating_scale_missing",
                "fields.rating needs rating_scale_max: the best rating on its scale (5 for 1-5)",
            )
        if not rating and self.rating_scale_max is not None:
            raise PydanticCustomError(
                "rating_path_missing", "rating_scale_max: there is no fields.rating to read"
            )
        rated = sorted(word for word, rule in self.events.items() if rule == "ticket.rated")
        if rated and not rating:
            raise PydanticCustomError(
                "rating_path_missing",
                "events: {words} means ticket.rated, which needs fields.rating and "
                "rating_scale_max",
                {"words": ", ".join(repr(word) for word in rated)},
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SourceConfig(_Model):
    """One source: its kind, credentials, limits, value maps and kind-specific options."""

    kind: Kind
    name: Identifier = Field(
        description="The source's name: its URL segment and the events' ``source``."
    )
    enabled: bool = True
    secret: SecretStr | None = Field(None, description="HMAC key of the source's signature.")
    tokens: tuple[SecretStr, ...] = Field((), description="Accepted bearer tokens.")
    basic_auth: dict[str, SecretStr] = Field(
        default_factory=dict, description="Accepted basic-auth users and their passwords."
    )
    signature_scheme: Literal["hmac", "hub-sha256", "hub-sha1", "zendesk", "glpi"] | None = Field(
        None, description="A generic source's signature as another kind signs (default hmac)."
    )
    signature_header: str | None = None
    timestamp_header: str | None = None
    replay_window_s: float | None = Field(
        300.0, gt=0, description="How old a signed timestamp may be; null: not checked."
    )
    rate_limit: RateLimit = RateLimit()
    max_body_bytes: int | None = Field(None, ge=1024)
    priorities: dict[str, Priority] = Field(default_factory=dict)
    statuses: dict[str, Identifier] = Field(default_factory=dict)
    fields: dict[FieldName, PathSpec] = Field(default_factory=dict)
    service_labels: tuple[str, ...] = Field(("service", "job"), min_length=1)
    mapping: TicketMapping | None = None
    triggers: dict[str, EventRule] = Field(default_factory=dict)

    @field_validator("priorities", "statuses", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        return _string_keys(value)

    @model_validator(mode="before")
    @classmethod
    def _named_after_the_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and data.get("kind"):
            return {**data, "name": data["kind"]}
        return data

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> SourceConfig:
        foreign = sorted(set(self.model_fields_set) - _APPLICABLE[self.kind])
        if foreign:
            raise PydanticCustomError(
                "foreign_option",
                "{options}: not an option of a {kind} source",
                {"options": ", ".join(foreign), "kind": self.kind},
            )
        if self.kind in ("generic", "servicenow", "glpi") and self.mapping is None:
            raise PydanticCustomError(
                "mapping_missing", "a {kind} source needs a mapping", {"kind": self.kind}
            )
        if "rating" in self.fields and self.kind != "jira":
            raise PydanticCustomError(
                "foreign_option",
                "fields.rating: not an option of a {kind} source",
                {"kind": self.kind},
            )
        rated = sorted(word for word, rule in self.triggers.items() if rule == "ticket.rated")
        if rated:
            raise PydanticCustomError(
                "rating_path_missing",
                "triggers: {words} means ticket.rated, but a {kind} trigger carries no rating",
                {"words": ", ".join(repr(word) for word in rated), "kind": self.kind},
            )
        return self


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _string_keys(inner) for key, inner in value.items()}
    return value
