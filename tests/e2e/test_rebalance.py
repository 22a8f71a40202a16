"""Three engines in one consumer group; one is killed and its partitions move.

Every clock survives the move: each ticket's warning and breach are emitted,
each exactly once (one event id per clock and stage), whichever engine owned
the ticket's partition when its stage came due.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from slawatch_common.db import create_engine
from slawatch_common.topics import Topics
from slawatch_engine import store
from support.kafka import TopicReader, fresh_topics, produce
from support.net import free_port
from support.processes import ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

TICKETS = 60
PARTITIONS = 6
CONFIG = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: rebalance
    calendar: always
    warn_at: [50]
    targets:
      P1: {response: 20s}
"""


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[Topics]:
    """Topics of their own, with six partitions for three engines."""
    with fresh_topics(kafka_bootstrap, "rb", PARTITIONS) as fresh:
        yield fresh


@pytest.fixture
def engines(
    tmp_path: Path, kafka_bootstrap: str, pg_url: str, topics: Topics
) -> Iterator[list[ServiceProcess]]:
    config = tmp_path / "slawatch.yaml"
    config.write_text(CONFIG)
    env = {
        "SLAWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SLAWATCH_TOPIC_PREFIX": topics.prefix,
        "SLAWATCH_KAFKA_PARTITIONS": str(PARTITIONS),
        "SLAWATCH_CONFIG_FILE": str(config),
        "DATABASE_URL": pg_url,
    }
    procs = []
    for index in range(3):
        port = free_port()
        folder = tmp_path / f"engine-{index}"
        folder.mkdir()
        own = {**env, "SLAWATCH_ENGINE_PORT": str(port)}
        procs.append(ServiceProcess("slawatch-engine", port, own, folder))
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def test_killing_one_of_three_engines_loses_no_clock_and_duplicates_nothing(
    engines: list[ServiceProcess], kafka_bootstrap: str, pg_url: str, topics: Topics
) -> None:
    time.sleep(3)  # let the group settle with three members
    t0 = datetime.now(UTC)
    keyed = [
        (
            f"rb:T-{n}",
            {
                "event_id": f"rb-{n}",
                "type": "ticket.created",
                "occurred_at": t0.isoformat(),
                "source": "rb",
                "data": {"id": f"T-{n}", "priority": "P1"},
            },
        )
        for n in range(TICKETS)
    ]
    asyncio.run(produce(kafka_bootstrap, topics.tickets, keyed))
    time.sleep(4)  # the warnings fall due at +10 s, the breaches at +20 s
    engines[1].kill()

    ids: dict[tuple[str, str], set[str]] = asyncio.run(_stages(kafka_bootstrap, topics))
    clocks = {clock for clock, _ in ids}
    assert len(clocks) == TICKETS
    for (clock, kind), event_ids in ids.items():
        assert len(event_ids) == 1, (clock, kind, event_ids)
    assert {kind for _, kind in ids} == {"sla.warning", "sla.breach"}
    assert asyncio.run(_clocks_stored(pg_url)) == TICKETS


async def _stages(bootstrap: str, topics: Topics) -> dict[tuple[str, str], set[str]]:
    """(clock, type) → distinct event ids, once every clock has its breach."""
    async with TopicReader(bootstrap, topics.sla) as reader:
        await reader.wait_for(
            lambda vs: sum(v["type"] == "sla.breach" for v in vs) >= TICKETS, within=90
        )
        for _ in range(10):  # anything emitted twice would show up by now
            await reader.poll(0.2)
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for value in reader.values:
        ids[(value["data"]["clock"]["clock_id"], value["type"])].add(value["event_id"])
    return ids


async def _clocks_stored(url: str) -> int:
    db = create_engine(url)
    try:
        async with db.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(store.clocks)) or 0)
    finally:
        await db.dispose()
