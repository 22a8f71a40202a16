"""The notifier's typed settings, read from ``SLAWATCH_*`` environment variables.

Built once in ``main`` (or by a test) and passed in; nothing here reads the
environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from slawatch_common.events import Channel
from slawatch_common.settings import ServiceSettings
from slawatch_notifier.retry import (
    DEFAULT_BUDGET_S,
    DEFAULT_CAP_S,
    DEFAULT_FALLBACK_AFTER_S,
    DEFAULT_MAX_INTERRUPTED,
    RetryPolicy,
)

YEAR_S = 366 * 86400.0
"""No duration setting is longer: instants computed from them stay far inside datetime's range."""


DEV_SMS_TOKEN = "dev-sms-token"
DEV_REPORT_TOKEN = "dev-report-token"
MIN_ACK_SECRET_BYTES = 32


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLAWATCH_", extra="ignore", frozen=True, populate_by_name=True
    )

    http_port: int = Field(8082, ge=1, le=65535, validation_alias="SLAWATCH_NOTIFIER_PORT")
    database_url: str = Field(
        "sqlite+aiosqlite:///.data/notifier.db",
        validation_alias=AliasChoices("SLAWATCH_NOTIFIER_DATABASE_URL", "DATABASE_URL"),
        description="postgresql+asyncpg://… or sqlite+aiosqlite:///…",
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(1025, ge=1, le=65535)
    smtp_sender: str = "slawatch <slawatch@localhost>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["starttls", "implicit", "opportunistic", "none"] = Field(
        "opportunistic",
        description="starttls: STARTTLS required; implicit: TLS from the first byte (port "
        "465); opportunistic: STARTTLS when the server offers it, its certificate not "
        "checked (encryption against listeners, as mail relays do); none: never. With "
        "SLAWATCH_SMTP_USERNAME or SLAWATCH_SMTP_PASSWORD set, opportunistic and none mean "
        "starttls: credentials never travel in clear.",
    )
    smtp_starttls: bool = Field(
        False, description="Older name of SLAWATCH_SMTP_TLS=starttls: true requires STARTTLS."
    )
    smtp_ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM) the SMTP server's certificate is checked "
        "against, instead of the system's.",
    )

    sms_url: str = "http://127.0.0.1:8025/sms"
    sms_token: SecretStr = SecretStr(DEV_SMS_TOKEN)

    ack_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key of acknowledgement links (SLAWATCH_ACK_SECRET)."
    )
    public_url: str | None = Field(
        None,
        description="Base URL recipients reach this service at (SLAWATCH_PUBLIC_URL); "
        "default http://<http_host>:<port>.",
    )
    ack_link_ttl_s: float = Field(
        86400.0, gt=0, le=YEAR_S, allow_inf_nan=False, description="How long an ack link is valid."
    )

    retry_base_s: float = Field(
        1.0, gt=0, le=YEAR_S, allow_inf_nan=False, description="First retry waits up to this long."
    )
    retry_cap_s: float = Field(
        DEFAULT_CAP_S,
        gt=0,
        le=YEAR_S,
        allow_inf_nan=False,
        description="No retry waits longer than this (5 min).",
    )
    retry_budget_s: float = Field(
        DEFAULT_BUDGET_S,
        gt=0,
        le=YEAR_S,
        allow_inf_nan=False,
        description="How long a notification is retried, from its first attempt, before it "
        "is failed (6 h); a failed one is sent again by `slawatch-notifier redrive`.",
    )
    channel_retry_budget_s: dict[
        Channel, Annotated[float, Field(gt=0, le=YEAR_S, allow_inf_nan=False)]
    ] = Field(
        default_factory=dict,
        description="The retry budget of particular channels instead of retry_budget_s, "
        "e.g. SLAWATCH_CHANNEL_RETRY_BUDGET_S='{\"sms\": 3600}'.",
    )
    fallback_after_s: float = Field(
        DEFAULT_FALLBACK_AFTER_S,
        ge=0,
        le=YEAR_S,
        allow_inf_nan=False,
        description="A notification failing this long (5 min) has its fallback channel "
        "tried as well while it keeps retrying.",
    )
    max_interrupted: int = Field(
        DEFAULT_MAX_INTERRUPTED,
        ge=1,
        le=100,
        description="Sends of one notification a crash may interrupt before it is failed.",
    )
    send_timeout_s: float = Field(
        10.0, gt=0, le=YEAR_S, allow_inf_nan=False, description="One SMTP or HTTP send, end to end."
    )
    shutdown_grace_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="At SIGTERM, how long sends in flight may take to end and be recorded.",
    )
    send_concurrency: int = Field(
        8, ge=1, le=256, description="Sends in flight at once on each channel (its own slots)."
    )
    channel_concurrency: dict[Channel, Annotated[int, Field(ge=1, le=256)]] = Field(
        default_factory=dict,
        description="Slots of particular channels instead of send_concurrency, "
        "e.g. SLAWATCH_CHANNEL_CONCURRENCY='{\"sms\": 2}'.",
    )

    engine_url: str = Field(
        "http://127.0.0.1:8081",
        description="Base URL of the SLA engine, which serves the compliance reports the "
        "notifier mails (GET /v1/reports/{contract}).",
    )
    engine_report_token: SecretStr = Field(
        SecretStr(DEV_REPORT_TOKEN),
        description="Bearer token the notifier reads reports from the engine with: one of "
        "the engine's SLAWATCH_REPORT_TOKENS.",
    )
    report_retry_budget_s: float = Field(
        86400.0,
        gt=0,
        le=YEAR_S,
        allow_inf_nan=False,
        description="How long a report mail is retried, from its first attempt, while the "
        "engine or the mail server fails (a day), before it is failed.",
    )

    def concurrency(self) -> dict[Channel, int]:
        """The slots of every channel."""
        return {c: self.channel_concurrency.get(c, self.send_concurrency) for c in Channel}

    def retry_policy(self) -> RetryPolicy:
        """Backoff, retry budgets (each channel's), fallback delay and the interruption cap."""
        return RetryPolicy(
            base_s=self.retry_base_s,
            cap_s=self.retry_cap_s,
            budget_s=self.retry_budget_s,
            channel_budget_s=dict(self.channel_retry_budget_s),
            fallback_after_s=self.fallback_after_s,
            max_interrupted=self.max_interrupted,
        )

    def report_retry_policy(self) -> RetryPolicy:
        """The backoff of notifications with the reports' own budget; the same cap on crashes."""
        return RetryPolicy(
            base_s=self.retry_base_s,
            cap_s=self.retry_cap_s,
            budget_s=self.report_retry_budget_s,
            max_interrupted=self.max_interrupted,
        )

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    def development_values(self) -> list[str]:
        from slawatch_notifier.acklink import DEV_SECRET

        found = super().development_values()
        secret = None if self.ack_secret is None else self.ack_secret.get_secret_value()
        if secret is None or secret == DEV_SECRET:
            found.append(
                "SLAWATCH_ACK_SECRET: not set (ack links would be signed with the "
                "public development key)"
            )
        elif len(secret.encode()) < MIN_ACK_SECRET_BYTES:
            found.append(f"SLAWATCH_ACK_SECRET: shorter than {MIN_ACK_SECRET_BYTES} bytes")
        if self.engine_report_token.get_secret_value() == DEV_REPORT_TOKEN:
            found.append(
                f"SLAWATCH_ENGINE_REPORT_TOKEN: the development token {DEV_REPORT_TOKEN!r}"
            )
        return found

    def generic_sms_values(self) -> list[str]:
        """The development values of the generic SMS provider, when it is the one in use."""
        found = []
        if self.sms_token.get_secret_value() == DEV_SMS_TOKEN:
            found.append(f"SLAWATCH_SMS_TOKEN: the development token {DEV_SMS_TOKEN!r}")
        if not self.sms_url.startswith("https://"):
            found.append("SLAWATCH_SMS_URL: not https")
        return found
