"""The processes the bench starts: the stock ``slawatch-engine``, ``slawatch-ingest``
and the open-loop load generator (``python -m bench.scale.load``).

Each is its own process, as deployed; their environment points them at the
bench's topics and database. The engine's log (INFO) is appended to a file under
``.data/bench/``; the bench follows it for the line that says the timer is
released and counts partition assignments (each one reloads every clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from bench.engine import BIN
from bench.ingest import ROOT, TOKEN, _free_port
from bench.scale.plan import CONFIG, PARTITIONS
from slawatch_common.topics import Topics

ENGINE = str(BIN / "slawatch-engine")


def engine_env(topics: Topics, dsn: str) -> dict[str, str]:
    """The engine's environment: the bench's topics, config and database."""
    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    return {
        **os.environ,
        "SLAWATCH_TOPIC_PREFIX": topics.prefix,
        "SLAWATCH_KAFKA_PARTITIONS": str(PARTITIONS),
        "SLAWATCH_CONFIG_FILE": str(CONFIG),
        "SLAWATCH_ENGINE_DATABASE_URL": url,
        "DATABASE_URL": url,
        "SLAWATCH_LOG_LEVEL": "INFO",
    }


async def migrate(env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(ENGINE, "migrate", cwd=ROOT, env=env)
    if await proc.wait() != 0:
        raise RuntimeError("slawatch-engine migrate failed")


class Engine:
    """One ``slawatch-engine run``; its log (INFO) appended to ``log``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self._env = {**env, "SLAWATCH_ENGINE_PORT": str(self.port)}
        self._log = log
        self.spawned = 0.0
        self.released_at = 0.0
        self.assignments = 0
        self._released = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.spawned = time.time()
        self._proc = await asyncio.create_subprocess_exec(
            ENGINE, cwd=ROOT, env=self._env, stderr=asyncio.subprocess.PIPE
        )
        self._reader = asyncio.create_task(self._read(self._proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        with self._log.open("a") as out:
            out.write(f"--- engine pid {proc.pid} spawned at {self.spawned:.3f}\n")
            while line := await proc.stderr.readline():
                text = line.decode(errors="replace")
                out.write(text)
                out.flush()
                self.assignments += "slawatch_engine.intake: assigned" in text
                if "timer released" in text and not self._released.is_set():
                    self.released_at = time.time()
                    self._released.set()

    async def wait_released(self, within_s: float) -> None:
        """Until the engine has loaded its clocks and released its timer; raises if it
        exits or takes longer than ``within_s``."""
        assert self._proc is not None
        done = asyncio.ensure_future(self._released.wait())
        exited = asyncio.ensure_future(self._proc.wait())
        await asyncio.wait({done, exited}, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        exited.cancel()
        if not self._released.is_set():
            raise RuntimeError(f"the engine was not ready within {within_s:.0f} s; see {self._log}")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def alive(self) -> None:
        """Raise if the engine has exited (a worker failed: it ends the process)."""
        if self._proc is not None and self._proc.returncode is not None:
            raise RuntimeError(f"the engine exited with {self._proc.returncode}; see {self._log}")

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, the consumer group left to expire."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        await self._finish()

    async def stop(self) -> None:
        """SIGTERM (SIGKILL after 30 s); nothing if it has exited already."""
        if self._proc is None or self._proc.returncode is not None:
            return
        self._proc.terminate()
        try:
            await asyncio.wait_for(self._proc.wait(), 30)
        except TimeoutError:
            self._proc.kill()
        await self._finish()

    async def _finish(self) -> None:
        assert self._proc is not None
        await self._proc.wait()
        if self._reader is not None:
            await self._reader


class Ingest:
    """``slawatch-ingest`` on the bench's topics."""

    def __init__(self, topics: Topics) -> None:
        self.port = _free_port()
        self._env = {
            **os.environ,
            "SLAWATCH_TOPIC_PREFIX": topics.prefix,
            "SLAWATCH_KAFKA_PARTITIONS": str(PARTITIONS),
            "SLAWATCH_INGEST_TOKENS": TOKEN,
            "SLAWATCH_INGEST_PORT": str(self.port),
            "SLAWATCH_LOG_LEVEL": "WARNING",
        }
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Spawn it and wait (up to 30 s) until ``/readyz`` answers 200."""
        self._proc = await asyncio.create_subprocess_exec(
            str(BIN / "slawatch-ingest"), cwd=ROOT, env=self._env, stderr=asyncio.subprocess.DEVNULL
        )
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(300):
                try:
                    response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                    if response.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("slawatch-ingest did not become ready")

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()


async def run_load(port: int, rate: float, seconds: float, filler: int) -> dict[str, Any]:
    """The open-loop generator (``bench/scale/load.py``) against ingest on ``port`` in a
    process of its own; its figures (``{"rate": 0.0}`` when ``rate`` is 0)."""
    if rate <= 0:
        return {"rate": 0.0}
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "python"), "-m", "bench.scale.load",
        str(port), str(rate), f"{seconds:.3f}", str(filler),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError("the load generator failed")
    result: dict[str, Any] = json.loads(out)
    return result
