"""Ingest under load, beside a bare uvicorn app under the same load generator.

- ``rps``: single validated events, each answered 202 once the broker has
  acknowledged it, under ``wrk`` (2 threads, 32 connections, 10 s);
- ``baseline_bare_uvicorn_rps``: ``bench/echo_app.py`` (reads the body,
  answers 202) under the same uvicorn and the same ``wrk`` run, same machine;
- ``batch_events_per_s``: arrays of 1,000 events, 4 requests in flight.
Both servers run as their own processes; the broker is the project's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from slawatch_common.kafka import ensure_topics
from slawatch_common.topics import Topics

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "bench-token"
BOOTSTRAP = os.environ.get("SLAWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def event(n: int) -> dict[str, Any]:
    return {
        "event_id": f"bench:{n}",
        "type": "ticket.created",
        "occurred_at": "2026-11-26T08:15:00+08:00",
        "source": "bench",
        "data": {"id": f"T-{n}", "priority": "P2", "status": "open", "title": "Load"},
    }


def bench_ingest() -> dict[str, Any]:
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}")
    asyncio.run(ensure_topics(BOOTSTRAP, topics.all(), 4))
    env = {
        **os.environ,
        "SLAWATCH_TOPIC_PREFIX": topics.prefix,
        "SLAWATCH_KAFKA_PARTITIONS": "4",
        "SLAWATCH_INGEST_TOKENS": TOKEN,
        "SLAWATCH_LOG_LEVEL": "WARNING",
    }
    echo = [str(BIN / "python"), "-m", "uvicorn", "bench.echo_app:app", "--log-level", "warning",
            "--no-access-log", "--port"]  # fmt: skip
    with (
        serving(echo, env, "/") as bare,
        serving(
            [str(BIN / "slawatch-ingest")], env, "/readyz", port_env="SLAWATCH_INGEST_PORT"
        ) as ingest,
    ):
        baseline = wrk(bare + "/")
        ours = wrk(ingest + "/v1/events")
        batch = asyncio.run(batch_rate(ingest + "/v1/events"))
    return {
        "rps": ours,
        "baseline_bare_uvicorn_rps": baseline,
        "ratio_to_baseline": round(ours / baseline, 3),
        "batch_events_per_s": batch,
        "load": "wrk -t2 -c32 -d10s, single events; batches of 1000, 4 in flight, 10 s",
    }


@contextmanager
def serving(
    command: list[str], env: dict[str, str], probe: str, port_env: str | None = None
) -> Iterator[str]:
    port = _free_port()
    if port_env:
        env = {**env, port_env: str(port)}
    else:
        command = [*command, str(port)]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + probe, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def wrk(url: str) -> float:
    """Requests per second that ``wrk`` measured, all answered 202."""
    body = json.dumps(event(1))
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    done = subprocess.run(
        ["wrk", "-t2", "-c32", "-d10s", "-s", file.name, url],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(file.name)
    if "Non-2xx" in done.stdout:
        raise RuntimeError(f"{url} answered errors under load:\n{done.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if match is None:
        raise RuntimeError(done.stdout)
    return round(float(match.group(1)))


async def batch_rate(url: str, seconds: float = 10.0, in_flight: int = 4) -> int:
    """Events per second through 1,000-event arrays."""
    batch = json.dumps([event(n) for n in range(1000)]).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    sent = 0
    stop = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.perf_counter() < stop:
            response = await client.post(url, content=batch, headers=headers)
            response.raise_for_status()
            sent += 1000

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(in_flight)))
    return round(sent / (time.perf_counter() - started))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
