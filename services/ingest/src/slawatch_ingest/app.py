"""The app factory: ``create_app(settings)`` wires settings, metrics, publisher and routes.

Nothing happens at import or in the factory beyond building objects; the
lifespan does the I/O. On start-up it creates the topics that are missing and
connects the producer, both waiting for a broker that is still coming up; on
shutdown it closes the producer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from slawatch_common.kafka import ensure_topics
from slawatch_ingest.events_api import events_router
from slawatch_ingest.metrics import IngestMetrics
from slawatch_ingest.openapi import event_schemas
from slawatch_ingest.probes import probes_router
from slawatch_ingest.publishing import Publisher
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.webhook_config import default_sources
from slawatch_ingest.webhooks_api import Clock, webhooks_router


class IngestAPI(FastAPI):
    """FastAPI, plus the event models in the OpenAPI components.

    ``POST /v1/events`` documents its body by reference to them (see ``openapi``).
    """

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        schema.setdefault("components", {}).setdefault("schemas", {}).update(event_schemas())
        return schema


def create_app(
    settings: IngestSettings,
    sources: Mapping[str, SourceConfig] | None = None,
    *,
    clock: Clock | None = None,
) -> FastAPI:
    """A ready-to-serve ingest app; serve it with uvicorn (its lifespan connects).

    ``sources`` are the webhook sources (``webhook_config.load_sources``); by
    default every built-in kind without credentials, which refuses every
    delivery. ``clock`` (wall time, for signature replay windows) is for tests.
    """
    sources = default_sources() if sources is None else sources
    registry = CollectorRegistry()
    metrics = IngestMetrics.register(
        registry, [name for name, cfg in sources.items() if cfg.enabled]
    )
    publisher = Publisher(settings.kafka_bootstrap, settings.topics, settings.produce_timeout_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(
            settings.kafka_bootstrap, settings.topics.all(), settings.kafka_partitions
        )
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()

    app = IngestAPI(
        title="slawatch ingest",
        version="1",
        description="Webhooks in, validated canonical events onto Kafka.",
        lifespan=lifespan,
    )
    app.include_router(events_router(settings, publisher, metrics))
    app.include_router(webhooks_router(settings, sources, publisher, metrics, clock=clock))
    app.include_router(probes_router(publisher, registry, settings.produce_timeout_s))
    return app
