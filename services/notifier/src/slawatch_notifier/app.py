"""The notifier's FastAPI app: probes, metrics, acks and on-call, with the workers in its lifespan.

The escalation config is read when the app is built (``create_app``; the
on-call routes need its schedules), with the report recipients of each
contract (``contracts.<name>.report_to``; ``config.py``), whose report
counters start there. Start-up order in the lifespan: migrate
the database, ensure the topics, start the producer, recover interrupted
sends (notifications and report mails), start the consumers and then the
workers: intake, scheduler, dispatch, outbox, and the compliance reports'
intake, delivery and outbox (``reports.py``). Shutdown (``shut_down``): the
intakes and the scheduler stop, the dispatcher and the report delivery drain
(sends in flight end and are recorded within ``SLAWATCH_SHUTDOWN_GRACE_S``),
the outboxes publish what ended, then the rest stops. A worker that fails
ends the process (``start_worker``); transient faults of the database or the
broker are waited out inside each worker.

Routes: ``/healthz``, ``/readyz`` (503 while the database or the broker does
not answer), ``/metrics``, ``/v1/dead-letters`` (``slawatch_common.deadletter_ops``),
``POST /v1/acks`` and
``GET``/``POST /v1/acks/<token>`` (``acks.py``; the GET only shows the link's
page), ``GET /v1/oncall[/<schedule>]`` (``oncall_api.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import Depends, FastAPI, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.auth import RequireCredential
from slawatch_common.consumer import reachable
from slawatch_common.db import create_engine
from slawatch_common.deadletter_ops import dead_letter_router
from slawatch_common.events import Channel
from slawatch_common.kafka import client_options, ensure_topics, start_producer
from slawatch_common.runtime import start_worker, stop_workers
from slawatch_notifier import reports, retention, store
from slawatch_notifier.acklink import DEV_SECRET, AckLinks
from slawatch_notifier.acks import acks_router, open_route
from slawatch_notifier.addresses import AddressHasher
from slawatch_notifier.channels.email import EmailChannel
from slawatch_notifier.channels.port import ChannelPort
from slawatch_notifier.channels.setup import ChannelSettings, build_channels, parse_channels
from slawatch_notifier.channels.sms import SmsChannel
from slawatch_notifier.clock import Clock, SystemClock
from slawatch_notifier.config import NotifierConfig, load_config
from slawatch_notifier.dispatch import Dispatcher
from slawatch_notifier.intake import Intake, start_consumer
from slawatch_notifier.metrics import NotifierMetrics
from slawatch_notifier.oncall_api import router as oncall_router
from slawatch_notifier.outbox import Outbox
from slawatch_notifier.planner import Planner
from slawatch_notifier.rate_limits import cap_for, limit_for
from slawatch_notifier.scheduler import Scheduler
from slawatch_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)


@dataclass
class Workers:
    """What the probes and routes look at: the running worker tasks and the database."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    engine: AsyncEngine | None = None
    consumer: AIOKafkaConsumer | None = None
    producer: AIOKafkaProducer | None = None

    def alive(self) -> bool:
        return bool(self.tasks) and not any(task.done() for task in self.tasks)

    def database(self) -> AsyncEngine:
        """The engine, for route dependencies; 503 before the lifespan made it."""
        if self.engine is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "starting")
        return self.engine


def create_app(
    settings: NotifierSettings,
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    config: NotifierConfig | None = None,
    env: Mapping[str, str] | None = None,
) -> FastAPI:
    """The app; reads the config file (unless ``config`` is given), starts nothing.

    Channel secrets come from ``env`` (the process environment by default).
    """
    registry = registry if registry is not None else CollectorRegistry()
    metrics = NotifierMetrics(registry)
    workers = Workers()
    clock = clock or SystemClock()
    pruning = retention.pruner(settings, registry, clock.now)
    config = config if config is not None else load_config(settings.config_file)
    metrics.initialise_contracts(config.reports)
    providers = parse_channels(config.channels, os.environ if env is None else env)
    links = ack_links(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        planner = Planner(config, links)
        async with (
            running(settings, planner, providers, metrics, clock, workers),
            pruning.running(workers.database()),  # entered once running has its database
        ):
            yield

    app = FastAPI(title="slawatch notifier", lifespan=lifespan)
    tokens = settings.token_book()
    # a known token before any body is read (FastAPI reads it before a route's dependencies)
    app.add_middleware(RequireCredential, tokens=tokens, is_open=open_route)
    app.include_router(acks_router(workers.database, links.secret, metrics, clock.now, tokens))
    app.include_router(oncall_router(config.schedules, clock.now, tokens))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(
        dead_letter_router(
            store.dead_letters,
            workers.database,
            lambda: _started(workers.producer),
            tokens,
        )
    )

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, Any]:
        """200 while the workers run and the database and the broker answer."""
        if not workers.alive() or workers.engine is None or workers.consumer is None:
            response.status_code = 503
            return {"status": "starting"}
        answers = await reachable(workers.engine, workers.consumer)
        if all(answers.values()):
            return {"status": "ready", **answers}
        response.status_code = 503
        return {"status": "unavailable", **answers}

    @app.get("/metrics", dependencies=[Depends(settings.metrics_access())])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def ack_links(settings: NotifierSettings) -> AckLinks:
    """The link signer; without ``SLAWATCH_ACK_SECRET`` a development key, loudly."""
    if settings.ack_secret is None:
        log.warning(
            "SLAWATCH_ACK_SECRET is not set: ack links are signed with the development key, "
            "which anyone can use to forge them; set it outside development"
        )
        secret = DEV_SECRET
    else:
        secret = settings.ack_secret.get_secret_value()
    ttl = timedelta(seconds=settings.ack_link_ttl_s)
    return AckLinks(secret.encode(), settings.base_url, ttl)


@asynccontextmanager
async def running(
    settings: NotifierSettings,
    planner: Planner,
    providers: ChannelSettings,
    metrics: NotifierMetrics,
    clock: Clock,
    workers: Workers,
) -> AsyncIterator[None]:
    """Everything the notifier runs, started in order and stopped in reverse."""
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        await store.migrate(engine)
        topics = settings.topics
        kafka = client_options(settings)  # TLS and SASL of every Kafka client
        await ensure_topics(
            settings.kafka_bootstrap,
            (topics.sla, topics.notifications, topics.reports),
            settings.kafka_partitions,
            options=kafka,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )
        producer = await start_producer(settings.kafka_bootstrap, options=kafka)
        stack.push_async_callback(producer.stop)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=settings.send_timeout_s))
        email = EmailChannel(settings, clock)
        stack.push_async_callback(email.aclose)
        doorbell, outbox_bell, scheduler_bell = asyncio.Event(), asyncio.Event(), asyncio.Event()
        hasher = AddressHasher(planner.links.secret)  # records and logs show no address
        dispatcher = Dispatcher(
            engine,
            _channels(settings, providers, http, clock, email),
            settings.retry_policy(),
            metrics=metrics,
            clock=clock,
            rand=random.Random(),
            doorbell=doorbell,
            outbox_bell=outbox_bell,
            concurrency=settings.concurrency(),
            limits=partial(limit_for, planner.config),
            links=planner.links,
            caps=partial(cap_for, planner.config),
            hasher=hasher,
        )
        await dispatcher.recover()
        engine_api = await stack.enter_async_context(reports.engine_client(settings))
        report_bell, report_outbox_bell = asyncio.Event(), asyncio.Event()
        delivery = reports.ReportDelivery(
            engine,
            engine_api,
            settings,
            metrics,
            clock=clock,
            rand=random.Random(),
            bell=report_bell,
            outbox_bell=report_outbox_bell,
            hasher=hasher,
        )
        await delivery.recover()
        consumer = await start_consumer(settings)
        stack.push_async_callback(consumer.stop)
        report_consumer = await reports.start_consumer(settings)
        stack.push_async_callback(report_consumer.stop)
        report_intake = reports.ReportIntake(
            report_consumer,
            engine,
            planner.config,
            metrics,
            bell=report_bell,
            clock=clock,
            hasher=hasher,
        )
        intake = Intake(
            consumer,
            engine,
            planner,
            metrics,
            doorbell=doorbell,
            scheduler_bell=scheduler_bell,
            clock=clock,
        )
        scheduler = Scheduler(
            engine, planner, metrics=metrics, clock=clock, bell=scheduler_bell, doorbell=doorbell
        )
        outbox = Outbox(
            engine,
            producer,
            topics.notifications,
            metrics=metrics,
            bell=outbox_bell,
            hasher=hasher,
        )
        report_outbox = Outbox(
            engine,
            producer,
            topics.notifications,
            metrics=metrics,
            bell=report_outbox_bell,
            hasher=hasher,
            source=reports.RECORDS,
            loop="report_outbox",
        )
        workers.tasks[:] = [
            start_worker(intake.run(), "notifier-intake"),
            start_worker(scheduler.run(), "notifier-scheduler"),
            start_worker(dispatcher.run(), "notifier-dispatch"),
            start_worker(outbox.run(), "notifier-outbox"),
            start_worker(report_intake.run(), "notifier-report-intake"),
            start_worker(delivery.run(), "notifier-report-delivery"),
            start_worker(report_outbox.run(), "notifier-report-outbox"),
        ]
        stack.push_async_callback(
            shut_down,
            workers.tasks,
            dispatcher,
            (outbox, report_outbox),
            settings.shutdown_grace_s,
            delivery,
        )
        workers.engine, workers.consumer, workers.producer = engine, consumer, producer
        stack.callback(workers.__dict__.update, engine=None, consumer=None, producer=None)
        yield


async def shut_down(
    tasks: list[asyncio.Task[None]],
    dispatcher: Dispatcher,
    outboxes: tuple[Outbox, Outbox],
    grace_s: float,
    delivery: reports.ReportDelivery,
) -> None:
    """Stop taking work (the intakes, the scheduler), let the sends in flight (notifications
    and report mails) end and be recorded within ``grace_s``, publish the records of what
    ended, then stop the rest. What is still in flight at the deadline stays ``sending``;
    the next start resends it."""
    intake, scheduler, dispatch, publisher, report_intake, report_delivery, report_publisher = tasks
    await stop_workers(intake, scheduler, report_intake)
    await asyncio.gather(dispatcher.drain(grace_s), delivery.drain(grace_s))
    await stop_workers(dispatch, report_delivery)
    try:
        async with asyncio.timeout(max(1.0, grace_s / 2)):
            for outbox in outboxes:
                await outbox.flush_all()
    except Exception:  # the next start publishes them
        log.warning("records left unpublished at shutdown", exc_info=True)
    await stop_workers(publisher, report_publisher)


def _started(producer: AIOKafkaProducer | None) -> AIOKafkaProducer:
    if producer is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "starting")
    return producer


def _channels(
    settings: NotifierSettings,
    providers: ChannelSettings,
    http: httpx.AsyncClient,
    clock: Clock,
    email: EmailChannel,
) -> dict[Channel, ChannelPort]:
    token = settings.sms_token.get_secret_value()
    return build_channels(
        providers,
        client=http,
        clock=clock,
        email=email,
        default_sms=SmsChannel(http, settings.sms_url, token),
    )
