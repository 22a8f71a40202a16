"""The app factory: ``create_app(settings)`` wires settings, metrics, publisher and routes.

Nothing happens at import or in the factory beyond building objects; the
lifespan does the I/O. On start-up it creates the topics that are missing and
connects the producer, both waiting for a broker that is still coming up; on
shutdown it closes the producer.

``POST /v1/events`` is served by ``events_api.EventIntake`` ahead of FastAPI
(see ``IngestAPI``); every other path goes through FastAPI as usual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from slawatch_common.kafka import client_options, ensure_topics
from slawatch_ingest.events_api import (
    EVENTS_PATH,
    EventIntake,
    events_operation,
    protected_sources,
)
from slawatch_ingest.metrics import IngestMetrics
from slawatch_ingest.openapi import event_schemas
from slawatch_ingest.probes import probes_router
from slawatch_ingest.publishing import Publisher
from slawatch_ingest.ratelimit import FailureLimit
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.webhook_config import default_sources
from slawatch_ingest.webhooks_api import webhooks_router
from slawatch_ingest.window import Clock, wall_clock


class IngestAPI(FastAPI):
    """FastAPI, with ``EVENTS_PATH`` served ahead of it by ``events``.

    Requests for that path (any method) go straight to the ``EventIntake``,
    skipping FastAPI's middleware and router; see ``events_api`` for why. The
    router has it too, as a plain route, for what reaches it another way (a
    trailing slash is redirected to it). The OpenAPI document describes it
    from ``events_api.events_operation``, with the event models its body
    refers to (see ``openapi``).
    """

    def __init__(self, *, events: EventIntake, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._events = events
        self.router.routes.append(Route(EVENTS_PATH, events, include_in_schema=False))
        self._documented: list[APIRoute] = [events_operation()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == EVENTS_PATH:
            await self._events(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = get_openapi(
                title=self.title,
                version=self.version,
                description=self.description,
                routes=[*self._documented, *self.routes],
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(event_schemas())
            self.openapi_schema = schema
        return self.openapi_schema


def create_app(
    settings: IngestSettings,
    sources: Mapping[str, SourceConfig] | None = None,
    *,
    clock: Clock | None = None,
) -> FastAPI:
    """A ready-to-serve ingest app; serve it with uvicorn (its lifespan connects).

    ``sources`` are the webhook sources (``webhook_config.load_sources``); by
    default every built-in kind without credentials, which refuses every
    delivery. ``clock`` (wall time, for signature replay windows and the
    window of accepted instants) is for tests.
    """
    sources = default_sources() if sources is None else sources
    registry = CollectorRegistry()
    metrics = IngestMetrics.register(
        registry, [name for name, cfg in sources.items() if cfg.enabled]
    )
    kafka = client_options(settings)  # TLS and SASL of every Kafka client
    publisher = Publisher(
        settings.kafka_bootstrap, settings.topics, settings.produce_timeout_s, options=kafka
    )
    # One limit of failed authentication per client address for both intakes.
    failures = FailureLimit.of(settings)
    # The sources an unbound events:write token may not post for: those with credentials.
    protected = protected_sources(settings, sources)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(
            settings.kafka_bootstrap,
            settings.topics.all(),
            settings.kafka_partitions,
            options=kafka,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()

    app = IngestAPI(
        events=EventIntake(
            settings,
            publisher,
            metrics,
            clock=clock or wall_clock,
            failures=failures,
            protected=protected,
        ),
        title="slawatch ingest",
        version="1",
        description="Webhooks in, validated canonical events onto Kafka.",
        lifespan=lifespan,
    )
    app.include_router(
        webhooks_router(settings, sources, publisher, metrics, clock=clock, failures=failures)
    )
    app.include_router(
        probes_router(publisher, registry, settings.produce_timeout_s, settings.metrics_access())
    )
    return app
