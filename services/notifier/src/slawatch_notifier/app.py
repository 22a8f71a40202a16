"""The notifier's FastAPI app: health, readiness and metrics, with the workers in its lifespan.

Start-up order: read the escalation config, migrate the database, ensure the
topics, start the producer, recover interrupted sends, start the consumer and
then the three workers (intake, dispatch, outbox). Shutdown stops them in
reverse. A worker that fails ends the process (``start_worker``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from slawatch_common.db import create_engine
from slawatch_common.events import Channel
from slawatch_common.kafka import ensure_topics, start_producer
from slawatch_common.runtime import start_worker, stop_workers
from slawatch_notifier import store
from slawatch_notifier.channels.email import EmailChannel
from slawatch_notifier.channels.port import ChannelPort
from slawatch_notifier.channels.sms import SmsChannel
from slawatch_notifier.clock import Clock, SystemClock
from slawatch_notifier.config import load_config
from slawatch_notifier.dispatch import Dispatcher
from slawatch_notifier.intake import Intake, start_consumer
from slawatch_notifier.metrics import NotifierMetrics
from slawatch_notifier.outbox import Outbox
from slawatch_notifier.retry import RetryPolicy
from slawatch_notifier.settings import NotifierSettings


@dataclass
class Workers:
    """What the probes look at: the running worker tasks."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def alive(self) -> bool:
        return bool(self.tasks) and not any(task.done() for task in self.tasks)


def create_app(
    settings: NotifierSettings,
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The app; nothing starts until its lifespan runs."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = NotifierMetrics(registry)
    workers = Workers()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(settings, metrics, clock or SystemClock(), workers):
            yield

    app = FastAPI(title="slawatch notifier", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, str]:
        if workers.alive():
            return {"status": "ready"}
        response.status_code = 503
        return {"status": "starting"}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


@asynccontextmanager
async def running(
    settings: NotifierSettings, metrics: NotifierMetrics, clock: Clock, workers: Workers
) -> AsyncIterator[None]:
    """Everything the notifier runs, started in order and stopped in reverse."""
    config = load_config(settings.config_file)
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        await store.migrate(engine)
        topics = settings.topics
        await ensure_topics(
            settings.kafka_bootstrap, (topics.sla, topics.notifications), settings.kafka_partitions
        )
        producer = await start_producer(settings.kafka_bootstrap)
        stack.push_async_callback(producer.stop)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=settings.send_timeout_s))
        doorbell, outbox_bell = asyncio.Event(), asyncio.Event()
        dispatcher = Dispatcher(
            engine,
            _channels(settings, http, clock),
            RetryPolicy(settings.max_attempts, settings.retry_base_s, settings.retry_cap_s),
            metrics=metrics,
            clock=clock,
            rand=random.Random(),
            doorbell=doorbell,
            outbox_bell=outbox_bell,
            concurrency=settings.send_concurrency,
        )
        await dispatcher.recover()
        consumer = await start_consumer(settings)
        stack.push_async_callback(consumer.stop)
        intake = Intake(consumer, engine, config, metrics, doorbell, clock)
        outbox = Outbox(engine, producer, topics.notifications, metrics=metrics, bell=outbox_bell)
        workers.tasks[:] = [
            start_worker(intake.run(), "notifier-intake"),
            start_worker(dispatcher.run(), "notifier-dispatch"),
            start_worker(outbox.run(), "notifier-outbox"),
        ]
        stack.push_async_callback(stop_workers, *workers.tasks)
        yield


def _channels(
    settings: NotifierSettings, http: httpx.AsyncClient, clock: Clock
) -> dict[Channel, ChannelPort]:
    token = settings.sms_token.get_secret_value()
    return {
        Channel.EMAIL: EmailChannel(settings, clock),
        Channel.SMS: SmsChannel(http, settings.sms_url, token),
    }
