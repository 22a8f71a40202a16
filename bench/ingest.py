"""Ingest under load, beside a bare uvicorn app under the same load generator.

- ``rps``: single validated events, each answered 202 once the broker has
  acknowledged it, under ``wrk`` (2 threads, 32 connections, 10 s);
- ``baseline_bare_uvicorn_rps``: ``bench/echo_app.py`` (reads the body,
  answers 202) under the same uvicorn and the same ``wrk`` run, same machine;
- ``half_rate``, ``p50_ms``, ``p99_ms``, ``max_ms``: latency of single events
  sent at a constant half of ``rps`` for 10 s by ``vegeta``, an open-loop
  generator (``wrk`` keeps 32 requests in flight and so cannot hold a rate);
  ``baseline_p99_ms``: the bare app at the same rate, same generator;
- ``batch_events_per_s``: arrays of 1,000 events, 4 requests in flight.
Both servers run as their own processes with one worker each; the broker is
the project's. ``deploy/bench/install.sh`` installs ``wrk`` and ``vegeta``.
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

from slawatch_common.kafka import client_options, delete_topics, ensure_topics
from slawatch_common.settings import ServiceSettings
from slawatch_common.topics import Topics

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "bench-token"
BOOTSTRAP = os.environ.get("SLAWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
VEGETA = ROOT / ".data/bench/bin/vegeta"


def kafka_options() -> dict[str, Any]:
    """The connection options of the benchmarks' own Kafka clients: the ``SLAWATCH_KAFKA_*``
    TLS and SASL settings of the environment, as the services read them."""
    return client_options(ServiceSettings())


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
    asyncio.run(ensure_topics(BOOTSTRAP, topics.all(), 4, options=kafka_options()))
    env = {
        **os.environ,
        "SLAWATCH_TOPIC_PREFIX": topics.prefix,
        "SLAWATCH_KAFKA_PARTITIONS": "4",
        "SLAWATCH_INGEST_TOKENS": TOKEN,
        "SLAWATCH_LOG_LEVEL": "WARNING",
    }
    echo = [str(BIN / "python"), "-m", "uvicorn", "bench.echo_app:app", "--log-level", "warning",
            "--no-access-log", "--port"]  # fmt: skip
    try:
        with (
            serving(echo, env, "/") as bare,
            serving(
                [str(BIN / "slawatch-ingest")], env, "/readyz", port_env="SLAWATCH_INGEST_PORT"
            ) as ingest,
        ):
            baseline = wrk(bare + "/")
            ours = wrk(ingest + "/v1/events")
            half_rate = max(1, round(ours / 2))
            latency = constant_rate(ingest + "/v1/events", half_rate)
            baseline_latency = constant_rate(bare + "/", half_rate)
            batch = asyncio.run(batch_rate(ingest + "/v1/events"))
    finally:
        asyncio.run(delete_topics(BOOTSTRAP, topics.all(), options=kafka_options()))
    return {
        "rps": ours,
        "baseline_bare_uvicorn_rps": baseline,
        "ratio_to_baseline": round(ours / baseline, 3),
        "half_rate": half_rate,
        **latency,
        "baseline_p99_ms": baseline_latency["p99_ms"],
        "batch_events_per_s": batch,
        "load": "wrk -t2 -c32 -d10s, single events; vegeta at half that rate, 10 s;"
        " batches of 1000, 4 in flight, 10 s",
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


def constant_rate(url: str, rate: int, seconds: int = 10) -> dict[str, float]:
    """p50, p99 and max latency (ms) of single events sent at ``rate``/s, all answered 2xx.

    ``vegeta`` sends on schedule whether or not earlier requests were
    answered (open loop), so a slow answer cannot hold back the load and
    hide itself, as it does under ``wrk``.
    """
    if not VEGETA.exists():
        raise RuntimeError(f"{VEGETA} is missing: run deploy/bench/install.sh")
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp, "event.json")
        body.write_text(json.dumps(event(1)))
        targets = Path(tmp, "targets")
        targets.write_text(
            f"POST {url}\nContent-Type: application/json\nAuthorization: Bearer {TOKEN}\n@{body}\n"
        )
        results = Path(tmp, "results.bin")
        attack = [str(VEGETA), "attack", f"-targets={targets}", f"-rate={rate}/1s"]
        subprocess.run(
            [*attack, f"-duration={seconds}s", "-timeout=10s", f"-output={results}"],
            check=True,
        )
        report = subprocess.run(
            [str(VEGETA), "report", "-type=json", str(results)],
            capture_output=True,
            text=True,
            check=True,
        )
    summary = json.loads(report.stdout)
    if set(summary["status_codes"]) - {"200", "202"}:
        raise RuntimeError(f"{url} answered errors at {rate}/s: {summary['status_codes']}")
    latencies = summary["latencies"]  # nanoseconds
    return {
        "p50_ms": round(latencies["50th"] / 1e6, 2),
        "p99_ms": round(latencies["99th"] / 1e6, 2),
        "max_ms": round(latencies["max"] / 1e6, 2),
    }


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
