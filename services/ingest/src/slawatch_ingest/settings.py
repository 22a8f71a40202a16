"""The ingest service's settings: the shared ``SLAWATCH_*`` ones plus its own.

Built once by ``main`` (or a test) and passed to ``create_app``; nothing here
reads the environment at import time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, Field, field_validator
from pydantic_settings import NoDecode

from slawatch_common.settings import ServiceSettings

MIB = 1024 * 1024
CENTURY_S = 100 * 366 * 86400


DEV_INGEST_TOKEN = "dev-token"


class IngestSettings(ServiceSettings):
    # An alias of its own (not SLAWATCH_HTTP_PORT) so that one environment can
    # give each service its port.
    http_port: int = Field(
        8080, ge=1, le=65535, validation_alias="SLAWATCH_INGEST_PORT", description="HTTP port."
    )
    # NoDecode: the variable is a plain comma-separated list, not JSON.
    ingest_tokens: Annotated[tuple[str, ...], NoDecode] = Field(
        (DEV_INGEST_TOKEN,),
        min_length=1,
        description="Accepted bearer tokens (SLAWATCH_INGEST_TOKENS, comma-separated).",
    )
    produce_timeout_s: float = Field(
        5.0, gt=0, le=120, description="A send not acknowledged by the broker by then fails."
    )
    max_body_bytes: int = Field(
        5 * MIB, ge=1024, description="Larger request bodies are refused with 413."
    )
    max_events_per_request: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="A POST /v1/events request carrying more events is refused with 422 before"
        " any is validated (a webhook delivery is bounded by its size cap instead).",
    )
    max_errors_listed: int = Field(
        100,
        ge=1,
        le=10_000,
        description="A 422 lists at most this many problems (then says it stopped).",
    )
    # Failed authentication (401 on the webhooks and on POST /v1/events) per
    # client address: a token bucket each; an address with none left is
    # answered 429 unless the headers alone prove its request (a valid bearer
    # token or basic-auth user), before anything of its body is read
    # (``ratelimit``).
    unauth_per_minute: float = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="Failed authentications a client address may have per minute, sustained.",
    )
    unauth_burst: int = Field(
        30, ge=1, description="Failed authentications a client address may have at once."
    )
    unauth_addresses: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Client addresses whose failures are remembered (least recent forgotten).",
    )
    # The window of instants an event may carry (occurred_at and every other
    # instant field); one outside it is refused with 422 naming the field.
    earliest_instant: AwareDatetime = Field(
        datetime(2000, 1, 1, tzinfo=UTC),
        description="Events with an instant before this are refused (RFC 3339 with offset).",
    )
    max_future_s: float = Field(
        3600.0,
        ge=0,
        le=CENTURY_S,
        allow_inf_nan=False,
        description="Events with an instant further ahead of this server's clock are refused.",
    )

    @field_validator("ingest_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        """Split ``"a, b"`` into ``("a", "b")``; blank entries are dropped."""
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value

    def development_values(self) -> list[str]:
        found = super().development_values()
        if DEV_INGEST_TOKEN in self.ingest_tokens:
            found.append(
                f"SLAWATCH_INGEST_TOKENS: holds the development token {DEV_INGEST_TOKEN!r}"
            )
        return found
