"""Services as real OS processes, the way they run in production."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

import httpx


class _Startable(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Startable)


@contextmanager
def started(server: S) -> Iterator[S]:
    """``server`` (a sink or emulator with ``start`` and ``stop``) running inside the block."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


BIN = Path(sys.executable).parent


class Exited(NamedTuple):
    """How a process ended: its exit status (``-N`` when signal N ended it) and how long it
    took from the signal."""

    code: int
    seconds: float


class ServiceProcess:
    """One console script (``slawatch-engine`` …) run with its own environment and log file."""

    def __init__(self, script: str, port: int, env: dict[str, str], log_dir: Path) -> None:
        self.script = script
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._env = {**os.environ, **env}
        self._log_path = log_dir / f"{script}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: bool = True, within: float = 60.0) -> None:
        """Start and wait for ``/healthz`` (and ``/readyz`` when ``ready``)."""
        log = self._log_path.open("ab")
        self._proc = subprocess.Popen(
            [str(BIN / self.script)], env=self._env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        probe = "/readyz" if ready else "/healthz"
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.script} exited: {self.log_tail()}")
            try:
                if httpx.get(self.url + probe, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.script} not ready in {within} s: {self.log_tail()}")

    @property
    def pid(self) -> int:
        """The OS process id of the current run (the last ``start``)."""
        if self._proc is None:
            raise RuntimeError(f"{self.script} was never started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def terminate(self, within: float = 60.0) -> Exited:
        """SIGTERM, as an orchestrator stops a service, and wait for the exit. A process
        still running after ``within`` seconds is killed (its status then says SIGKILL)."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"{self.script} is not running")
        started = time.monotonic()
        self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self._proc.wait()
        return Exited(code, time.monotonic() - started)

    def log_size(self) -> int:
        """Bytes in the log so far: a mark to read what comes after (``log_text``)."""
        return self._log_path.stat().st_size if self._log_path.exists() else 0

    def log_text(self, since: int = 0) -> str:
        """The log from byte ``since`` on (every run appends to the same file)."""
        if not self._log_path.exists():
            return ""
        with self._log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        if not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])


async def until_ready(
    process: asyncio.subprocess.Process,
    url: str,
    within: float,
    what: str,
    log_tail: Callable[[], str],
) -> None:
    """Wait until ``url`` + ``/-/ready`` answers 200 (Prometheus' and Alertmanager's
    readiness); ``RuntimeError`` with the log's tail if ``process`` exits or ``within``
    seconds pass first."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=url, timeout=1) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{what} exited: {log_tail()}")
            try:
                if (await client.get("/-/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} not ready in {within} s: {log_tail()}")


class Daemon:
    """A server binary a test starts (``_process``) writing to a log (``_log_path``):
    how it stops and what its log says last."""

    _process: asyncio.subprocess.Process | None
    _log_path: Path

    async def stop(self) -> None:
        """Terminate the process (then kill it if it lingers); idempotent."""
        if self._process is None or self._process.returncode is not None:
            return
        self._process.terminate()
        try:
            await asyncio.wait_for(self._process.wait(), timeout=10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
