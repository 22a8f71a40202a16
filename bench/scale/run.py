"""The run's phases, in order: empty engine, seed, window, kill and restart.

``bench_engine_scale`` owns the run's resources (a fresh database, topics with a
fresh prefix, the processes) and removes them whatever happens; each phase
records what it measured into one ``Observed``, and ``figures.analyse`` turns
that and the SLA records into the result.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from bench.engine import PG_ADMIN
from bench.ingest import BOOTSTRAP, ROOT, kafka_options
from bench.scale import probes
from bench.scale.figures import STAGE_TYPES, Observed, analyse
from bench.scale.plan import DOWN_S, SLACK_S, Plan, say
from bench.scale.processes import Engine, Ingest, engine_env, migrate, run_load
from bench.scale.seed import seed
from bench.scale.topics import SlaRecorder, create_topics, produce_stops
from slawatch_common.kafka import delete_topics
from slawatch_common.topics import Topics

LOGS = ROOT / ".data/bench"


def bench_engine_scale() -> dict[str, Any]:
    """One full run as ``Plan.from_env`` says; the figures (see ``bench.scale``)."""
    return asyncio.run(_bench(Plan.from_env()))


async def _bench(plan: Plan) -> dict[str, Any]:
    started = time.time()
    topics = Topics(f"benchscale{uuid.uuid4().hex[:8]}")
    database = f"bench_{uuid.uuid4().hex[:12]}"
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"engine_scale-{topics.prefix}.log"
    env = engine_env(topics, dsn)
    recorder = SlaRecorder(topics.sla)
    observed = Observed()
    say(f"{plan.clocks:,} clocks, band {plan.band:,} tickets; engine log {log}")
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        await create_topics(topics)
        await migrate(env)
        reading = asyncio.create_task(recorder.run())
        await _empty(env, log, observed)
        seeding = time.time()
        plan = await seed(plan, dsn)
        observed.seed_s = time.time() - seeding
        say(f"seeded in {observed.seed_s:.0f} s; window starts in {plan.w0 - time.time():.0f} s")
        plan = await _window(plan, env, log, topics, dsn, observed)
        await _restart(env, log, recorder, observed)
        await asyncio.sleep(2)  # the recorder reads the last records
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
    finally:
        await _drop(admin, database)
        await admin.close()
        await delete_topics(BOOTSTRAP, topics.all(), options=kafka_options())
    result = analyse(plan, recorder.seen, observed)
    result["wall_s"] = round(time.time() - started)
    return result


async def _drop(admin: Any, database: str) -> None:
    """Drop the bench's database. A plain DROP first: it stops autovacuum workers on
    the fresh tables itself, which FORCE may not terminate for a non-superuser."""
    for _ in range(10):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
            return
        except asyncpg.ObjectInUseError:
            await asyncio.sleep(1)
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _empty(env: dict[str, str], log: Path, observed: Observed) -> None:
    """The engine on the migrated, empty database: its RSS at rest."""
    engine = Engine(env, log)
    await engine.start()
    try:
        await engine.wait_released(60)
        await asyncio.sleep(3)
        observed.rss_empty = probes.memory(engine)
    finally:
        await engine.stop()
    say(f"empty engine: RSS {observed.rss_empty / 2**20:.0f} MiB")


async def _window(
    plan: Plan, env: dict[str, str], log: Path, topics: Topics, dsn: str, observed: Observed
) -> Plan:
    """An engine on the seeded clocks, through the window under stops and ingest load,
    until its SIGKILL; the plan with the window's actual start."""
    ingest = Ingest(topics)
    if plan.ingest_rate > 0:
        await ingest.start()
    engine = Engine(env, log)
    load: asyncio.Task[dict[str, Any]] | None = None
    stops: asyncio.Task[int] | None = None
    await engine.start()
    try:
        plan = await _loaded(plan, engine, observed)
        await asyncio.sleep(max(0.0, plan.start - 1 - time.time()))
        seconds = plan.kill_at - time.time()
        load = asyncio.create_task(run_load(ingest.port, plan.ingest_rate, seconds, plan.filler))
        stops = asyncio.create_task(produce_stops(topics.tickets, plan))
        await _through(plan, engine, dsn, observed)
        await asyncio.sleep(max(0.0, plan.kill_at - time.time()))
        observed.rss_peak = probes.memory(engine, "VmHWM")
        observed.killed = time.time()
        await engine.kill()
        observed.assignments["window_engine"] = engine.assignments
        say("engine killed (SIGKILL)")
        observed.late_stops = await stops
        observed.ingest = await load
    finally:
        for task in (t for t in (load, stops) if t is not None):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await engine.stop()
        await ingest.stop()
    return plan


async def _loaded(plan: Plan, engine: Engine, observed: Observed) -> Plan:
    """Once the engine has loaded its clocks: its RSS and metrics, and the plan with the
    window moved (within the band's slack) if the engine was ready late, rather than
    starting it with a backlog."""
    await engine.wait_released(max(60.0, plan.w0 - time.time() + 60))
    observed.load_s = engine.released_at - engine.spawned
    plan = replace(plan, start=min(max(plan.w0, engine.released_at + 3), plan.w0 + SLACK_S))
    await asyncio.sleep(2)
    observed.rss_loaded = probes.memory(engine)
    say(
        f"engine loaded its clocks in {observed.load_s:.1f} s; RSS "
        f"{observed.rss_loaded / 2**20:.0f} MiB; window starts in "
        f"{plan.start - time.time():.0f} s ({plan.start - plan.w0:.0f} s after the plan)"
    )
    if engine.released_at > plan.start:
        say("WARNING: the engine was ready only after the window began")
    observed.metrics["ready"] = await probes.scrape(engine.port)
    return plan


async def _through(plan: Plan, engine: Engine, dsn: str, observed: Observed) -> None:
    """Through the window: the engine's RSS every few seconds and its database sessions
    sampled; then its CPU, the machine's, the tables' growth and the engine's metrics."""
    cpu, wall, machine = probes.cpu_s(engine), time.time(), probes.machine_busy_s()
    before = await probes.tables(dsn)
    sampling = asyncio.create_task(probes.sample_sessions(dsn, observed.sessions))
    while time.time() < plan.kill_at - 2:
        await asyncio.sleep(0)  # lets a finished engine's exit status be seen
        observed.rss_window_max = max(observed.rss_window_max, probes.memory(engine))
        await asyncio.sleep(min(5.0, max(0.0, plan.kill_at - 2 - time.time())))
        say(f"window: {time.time() - plan.start:.0f}/{plan.window_s:.0f} s")
    sampling.cancel()
    await asyncio.gather(sampling, return_exceptions=True)
    observed.tables = probes.tables_delta(before, await probes.tables(dsn))
    observed.cpu_window_s = probes.cpu_s(engine) - cpu
    observed.machine_busy_s = probes.machine_busy_s() - machine
    observed.cpu_window_wall = time.time() - wall
    observed.metrics["window"] = await probes.scrape(engine.port)


async def _restart(
    env: dict[str, str], log: Path, recorder: SlaRecorder, observed: Observed
) -> None:
    """``DOWN_S`` after the kill, a new engine: until its overdue backlog is drained."""
    await asyncio.sleep(max(0.0, observed.killed + DOWN_S - time.time()))
    engine = Engine(env, log)
    await engine.start()
    observed.spawn2 = engine.spawned
    try:
        await engine.wait_released(120)
        observed.release2 = engine.released_at
        took = engine.released_at - engine.spawned
        say(f"restarted engine released its timer after {took:.1f} s")
        await _drained(engine, recorder, observed)
        observed.assignments["restarted_engine"] = engine.assignments
    finally:
        await engine.stop()


async def _drained(
    engine: Engine, recorder: SlaRecorder, observed: Observed, quiet_s: float = 15.0
) -> None:
    """Until the engine fires stages due after its timer was released (it fires in due
    order, so the backlog is behind it), or nothing of the backlog came for ``quiet_s``."""
    counted, seen, changed, past = 0, 0, time.time(), 0.0
    while time.time() < observed.release2 + 150:
        engine.alive()
        fresh = [e for e in recorder.seen[counted:] if e.type in STAGE_TYPES]
        counted = len(recorder.seen)
        backlog = sum(e.appended >= observed.spawn2 and e.at < observed.release2 for e in fresh)
        if backlog:
            seen, changed = seen + backlog, time.time()
        if not past and any(e.at > observed.release2 + 1 for e in fresh):
            past = time.time()
        if (past and time.time() - past > 2) or time.time() - changed > quiet_s:
            break
        await asyncio.sleep(0.5)
    say(f"backlog drained: {seen:,} stages appended")
