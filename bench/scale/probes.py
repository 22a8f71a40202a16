"""Readings of the running system: the engine's memory and CPU (/proc), the machine's
CPU, the engine's own metrics (/metrics), and PostgreSQL's view (pg_stat_*).

Each reading is a snapshot; the run takes them at its phases and the figures
are their differences.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.scale.processes import Engine

Tables = dict[str, dict[str, int]]


def memory(engine: Engine, field: str = "VmRSS") -> int:
    """Bytes of ``field`` (VmRSS, VmHWM) in the engine's /proc/<pid>/status; raises if
    the engine has exited."""
    engine.alive()
    for line in Path(f"/proc/{engine.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for pid {engine.pid}")


def cpu_s(engine: Engine) -> float:
    """User + system CPU seconds the engine has used so far."""
    stat = Path(f"/proc/{engine.pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores; /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def scrape(port: int) -> dict[str, float]:
    """Every ``slawatch_engine_*`` sample of the engine's /metrics, by name and labels."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("slawatch_engine_"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


async def sample_sessions(dsn: str, into: dict[str, int], every_s: float = 0.25) -> None:
    """Until cancelled, several times a second: where the engine's transactions are,
    counted into ``into``: ``active`` (in PostgreSQL, with its wait event if any) or
    ``idle in transaction`` (in the engine)."""
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            for row in await conn.fetch(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND state <> 'idle'"
            ):
                wait = f" {row['wait_event_type']}:{row['wait_event']}" if row["wait_event"] else ""
                key = f"{row['state']}{wait}"
                into[key] = into.get(key, 0) + 1
            await asyncio.sleep(every_s)
    finally:
        await conn.close()


async def tables(dsn: str) -> Tables:
    """The engine's tables (rows, dead rows, vacuums, size) and the server's checkpoints."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count, "
            "pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables "
            "WHERE relname LIKE 'engine_%'"
        )
        bgwriter = await conn.fetchrow(
            "SELECT checkpoints_req, checkpoints_timed FROM pg_stat_bgwriter"
        )
    finally:
        await conn.close()
    found = {row["relname"]: {k: int(v) for k, v in row.items() if k != "relname"} for row in rows}
    return {**found, "checkpoints (whole server)": dict(bgwriter)}


def tables_delta(before: Tables, after: Tables) -> Tables:
    """Sizes and dead rows at the end; vacuums, analyses and checkpoints in between."""
    counts = ("autovacuum_count", "autoanalyze_count", "checkpoints_req", "checkpoints_timed")
    return {
        name: {k: v - before.get(name, {}).get(k, 0) if k in counts else v for k, v in row.items()}
        for name, row in after.items()
    }
