"""The app factory: ``create_app(settings)`` wires settings, metrics, publisher and routes.

Nothing happens at import or in the factory beyond building objects; the
lifespan does the I/O. On start-up it creates the topics that are missing and
connects the producer, both waiting for a broker that is still coming up; on
shutdown it closes the producer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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


class IngestAPI(FastAPI):
    """FastAPI, plus the event models in the OpenAPI components.

    ``POST /v1/events`` documents its body by reference to them (see ``openapi``).
    """

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        schema.setdefault("components", {}).setdefault("schemas", {}).update(event_schemas())
        return schema


def create_app(settings: IngestSettings) -> FastAPI:
    """A ready-to-serve ingest app; serve it with uvicorn (its lifespan connects)."""
    registry = CollectorRegistry()
    metrics = IngestMetrics.register(registry)
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
    app.include_router(probes_router(publisher, registry, settings.produce_timeout_s))
    return app
