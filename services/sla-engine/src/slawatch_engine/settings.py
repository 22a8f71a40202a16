"""The engine's typed settings (``SLAWATCH_*`` environment variables)."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from slawatch_common.settings import ServiceSettings


class EngineSettings(ServiceSettings):
    http_port: int = Field(8081, validation_alias=AliasChoices("SLAWATCH_ENGINE_PORT"))
    database_url: str = Field(
        "sqlite+aiosqlite:///.data/engine.db",
        validation_alias=AliasChoices("SLAWATCH_ENGINE_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy async URL: SQLite by default, or PostgreSQL.",
    )
    gauge_refresh_s: float = Field(10.0, gt=0, description="How often open clocks are counted.")

    @property
    def consumer_group(self) -> str:
        return f"{self.topic_prefix}.engine"
