"""The engine's typed settings (``SLAWATCH_*`` environment variables)."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from slawatch_common.settings import ServiceSettings

DEV_REPORT_TOKEN = "dev-report-token"


class EngineSettings(ServiceSettings):
    http_port: int = Field(8081, validation_alias=AliasChoices("SLAWATCH_ENGINE_PORT"))
    database_url: str = Field(
        "sqlite+aiosqlite:///.data/engine.db",
        validation_alias=AliasChoices("SLAWATCH_ENGINE_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy async URL: SQLite by default, or PostgreSQL.",
    )
    gauge_refresh_s: float = Field(
        60.0, gt=0, description="How often open clocks are counted (a scan of engine_clocks)."
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=6_000,
        le=300_000,
        description="Consumer group session: how soon a dead engine's partitions move on.",
    )
    dedup_retention_days: float = Field(
        8.0,
        gt=0,
        description="How long applied event ids are kept for redelivery dedup; longer than "
        "the input topic's retention (Kafka's default is 7 days).",
    )

    report_tokens: tuple[str, ...] = Field(
        (DEV_REPORT_TOKEN,),
        min_length=1,
        description="Bearer tokens that read contracts and compliance reports (GET /v1/contracts, "
        "/v1/reports/…), as a JSON list in SLAWATCH_REPORT_TOKENS; admin tokens work too.",
    )
    availability_refresh_s: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="How often contracts' availability is evaluated at the latest (sooner when "
        "an alert arrives or a budget stage is due).",
    )

    clock_shift_s: float = Field(
        0.0,
        ge=-10 * 366 * 86400,
        le=10 * 366 * 86400,
        description="Seconds added to the engine's clock: a test clock, to cross a period's "
        "end without waiting for it. Leave it 0 outside tests.",
    )

    @property
    def consumer_group(self) -> str:
        return f"{self.topic_prefix}.engine"

    @property
    def monitoring_group(self) -> str:
        return f"{self.topic_prefix}.engine-monitoring"

    def development_values(self) -> list[str]:
        found = super().development_values()
        if DEV_REPORT_TOKEN in self.report_tokens:
            found.append(
                f"SLAWATCH_REPORT_TOKENS: holds the development token {DEV_REPORT_TOKEN!r}"
            )
        if self.clock_shift_s:
            found.append("SLAWATCH_CLOCK_SHIFT_S: a test clock; leave it 0")
        return found
