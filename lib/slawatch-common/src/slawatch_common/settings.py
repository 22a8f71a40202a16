"""Typed settings every service shares, read from ``SLAWATCH_*`` environment variables.

Built once in a service's ``main`` and passed in; nothing reads the
environment at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from slawatch_common.topics import Topics


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLAWATCH_", extra="ignore", frozen=True, populate_by_name=True
    )

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field("slawatch", pattern=r"^[A-Za-z0-9._-]+$")
    kafka_partitions: int = Field(4, ge=1, le=1024, description="Partitions of created topics.")
    config_file: Path = Field(Path("deploy/config/slawatch.yaml"), description="Policy YAML.")
    http_host: str = "127.0.0.1"
    admin_tokens: tuple[str, ...] = Field(
        ("dev-admin-token",),
        min_length=1,
        description="Bearer tokens of the operations API (dead letters, redrive), as a JSON "
        "list in SLAWATCH_ADMIN_TOKENS.",
    )
    log_level: str = "INFO"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)
