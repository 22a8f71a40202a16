"""The notifier's mail rate, beside bare aiosmtplib sending the same messages, same run.

- ``emails_per_s``: breach events on the SLA topic, each asking for one mail,
  taken in by the notifier process (PostgreSQL), planned, claimed, sent over
  SMTP and recorded; counted from the first mail recorded sent to the last,
  by the notifier's own records (read after the run: measuring does not load
  the notifier);
- ``baseline_bare_smtp_per_s``: aiosmtplib alone sending the very messages the
  notifier builds (``build_message``) over as many reused connections as the
  notifier sends at once, into the same sink.

The sink is aiosmtpd's discarding handler in a process of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import yaml

from bench.engine import PG_ADMIN
from bench.ingest import BOOTSTRAP, ROOT, _free_port, kafka_options
from slawatch_common.kafka import delete_topics, ensure_topics, start_producer
from slawatch_common.topics import Topics
from slawatch_notifier.channels.email import build_message
from slawatch_notifier.channels.port import Outbound
from slawatch_notifier.templates import Content

BIN = Path(sys.executable).parent
MAILS = 5_000
CONCURRENCY = 8
SENDER = "slawatch <slawatch@bench.example>"


def bench_notifier() -> dict[str, Any]:
    return asyncio.run(_bench())


async def _bench() -> dict[str, Any]:
    port = _free_port()
    sink = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiosmtpd",
        "-n",
        "-l",
        f"127.0.0.1:{port}",
        "-c",
        "aiosmtpd.handlers.Sink",
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_for_port(port)
        baseline = await _bare_smtp(port)
        rate = await _notifier_rate(port)
    finally:
        sink.terminate()
        await sink.wait()
    return {
        "emails_per_s": rate,
        "baseline_bare_smtp_per_s": baseline,
        "ratio_to_baseline": round(rate / baseline, 3),
        "load": f"{MAILS} breach mails, {CONCURRENCY} sends at once, PostgreSQL",
    }


def _outbound(n: int) -> Outbound:
    return Outbound(
        notification_id=f"bench:T-{n}:resolution:breach:0:supervisor:email",
        ticket_source="bench",
        ticket_id=f"T-{n}",
        recipient_name="Service desk supervisor",
        address="supervisor@bench.example",
        content=Content(
            subject=f"[slawatch] SLA breach: P2 bench:T-{n} resolution",
            text=f"Hello,\n\nThe resolution SLA of bench:T-{n} was breached.\n",
            html=f"<p>The resolution SLA of bench:T-{n} was breached.</p>",
        ),
    )


async def _bare_smtp(port: int) -> int:
    """aiosmtplib alone: the same messages over ``CONCURRENCY`` reused connections."""
    now = datetime.now(UTC)
    messages = [build_message(_outbound(n), sender=SENDER, now=now) for n in range(MAILS)]
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)

    async def worker() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as smtp:
            while not queue.empty():
                await smtp.send_message(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return round(MAILS / (time.perf_counter() - started))


def _breach(n: int, at: datetime) -> dict[str, Any]:
    clock = f"bench:T-{n}:resolution"
    return {
        "event_id": f"{clock}:breach",
        "type": "sla.breach",
        "occurred_at": at.isoformat(),
        "source": "slawatch-engine",
        "data": {
            "ticket": {"source": "bench", "id": f"T-{n}", "priority": "P2", "service": "network"},
            "clock": {
                "clock_id": clock,
                "metric": "resolution",
                "policy": "bench",
                "escalation": "bench",
                "target_seconds": 3600,
                "business_seconds_used": 3600,
                "started_at": (at - timedelta(hours=1)).isoformat(),
                "deadline": at.isoformat(),
                "cycle": 1,
            },
            "stage": "breach",
            "threshold_percent": 100,
        },
    }


def _config(folder: Path) -> Path:
    document = {
        "notifier": {
            "people": {"supervisor": {"name": "Supervisor", "email": "supervisor@bench.example"}},
            "escalations": {
                "bench": [{"on": "breach", "notify": [{"to": "supervisor", "via": "email"}]}]
            },
        }
    }
    path = folder / "slawatch.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


async def _notifier_rate(smtp_port: int) -> int:
    topics = Topics(f"benchnot{uuid.uuid4().hex[:8]}")
    await ensure_topics(BOOTSTRAP, topics.all(), 4, options=kafka_options())
    producer = await start_producer(BOOTSTRAP, options=kafka_options())
    try:
        at = datetime.now(UTC)
        sends = [
            await producer.send(
                topics.sla, json.dumps(_breach(n, at)).encode(), key=f"bench:T-{n}".encode()
            )
            for n in range(MAILS)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    database = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        with tempfile.TemporaryDirectory() as folder:
            dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
            return await _run_notifier(topics, dsn, _config(Path(folder)), smtp_port)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        await delete_topics(BOOTSTRAP, topics.all(), options=kafka_options())


async def _run_notifier(topics: Topics, pg_dsn: str, config: Path, smtp_port: int) -> int:
    port = _free_port()
    env = {
        **os.environ,
        "SLAWATCH_TOPIC_PREFIX": topics.prefix,
        "SLAWATCH_KAFKA_PARTITIONS": "4",
        "SLAWATCH_NOTIFIER_PORT": str(port),
        "SLAWATCH_CONFIG_FILE": str(config),
        "SLAWATCH_SMTP_PORT": str(smtp_port),
        "SLAWATCH_SMTP_SENDER": SENDER,
        "SLAWATCH_SEND_CONCURRENCY": str(CONCURRENCY),
        "SLAWATCH_ACK_SECRET": "bench",
        "DATABASE_URL": pg_dsn.replace("postgresql://", "postgresql+asyncpg://"),
        "SLAWATCH_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "slawatch-notifier"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        db = await asyncpg.connect(pg_dsn)
        try:
            while await _count_sent(db) < MAILS:
                if proc.returncode is not None:
                    raise RuntimeError(f"the notifier exited with {proc.returncode}")
                await asyncio.sleep(0.5)
            return await _rate(db)
        finally:
            await db.close()
    finally:
        proc.terminate()
        await proc.wait()


async def _count_sent(db: asyncpg.Connection) -> int:
    try:
        count: int = await db.fetchval(
            "SELECT count(*) FROM notifier_notifications WHERE status = 'sent'"
        )
    except asyncpg.UndefinedTableError:  # not migrated yet
        return 0
    return count


async def _rate(db: asyncpg.Connection) -> int:
    """Mails recorded sent per second, from the notifier's own delivery log (after the run,
    so that measuring costs the notifier nothing): the mails recorded after the first
    record, over the time from the first record to the last."""
    first, last, count = await db.fetchrow(
        "SELECT min(updated_at), max(updated_at), count(*) FROM notifier_notifications"
        " WHERE status = 'sent'"
    )
    in_first = await db.fetchval(
        "SELECT count(*) FROM notifier_notifications WHERE status = 'sent' AND updated_at = $1",
        first,
    )
    elapsed = (last - first).total_seconds()
    return round((count - in_first) / elapsed) if elapsed else 0


async def _wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"nothing listens on {port}")


if __name__ == "__main__":
    print(bench_notifier())
