"""Process plumbing shared by the services: logging, configuration files, workers.

A service is one process: a FastAPI app served by uvicorn whose lifespan starts
the service's background workers. A worker that fails ends the process with a
non-zero status (the supervisor restarts it); nothing catches and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from slawatch_common.consumer import is_fatal, is_transient

log = logging.getLogger(__name__)

EXIT_WORKER_FAILED = 70


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(one_line)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO: chat robots carry their tokens in theirs
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def one_line(record: logging.LogRecord) -> bool:
    """Keep a log message on its line: ids and text from events may hold CR or LF, which
    would otherwise forge lines of their own (a traceback still follows on its lines)."""
    message = record.getMessage()
    if "\n" in message or "\r" in message:
        record.msg = message.replace("\r", "\\r").replace("\n", "\\n")
        record.args = None
    return True


def start_worker(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """Run ``coro`` as a task; if it ever raises, log it and end the process."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_exit_on_failure)
    return task


def _exit_on_failure(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.critical("worker %s failed; exiting", task.get_name(), exc_info=exc)
        logging.shutdown()
        os._exit(EXIT_WORKER_FAILED)


async def stop_workers(*tasks: asyncio.Task[None]) -> None:
    """Cancel workers and wait until they have finished."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid; the message says where."""


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping at the top of a YAML file, or ``ConfigError``."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return loaded


def describe_errors(exc: ValidationError, prefix: str = "") -> str:
    """One line per invalid field, each naming its dotted path."""
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        lines.append(f"{path or '<root>'}: {error['msg']}")
    return "\n".join(lines)


class Heartbeats:
    """The last tick of each of a service's loops, and the transient faults each waited out.

    ``<prefix>_loop_last_tick_timestamp_seconds{loop}``: Unix time of the loop's last
    completed pass; an alert on ``time() - …`` catches a loop that hangs or keeps
    failing while the process lives. ``<prefix>_transient_faults_total{loop}``: faults
    (database or broker away) the loop backed off from instead of exiting.
    """

    def __init__(self, registry: CollectorRegistry, prefix: str, loops: tuple[str, ...]) -> None:
        self._last = Gauge(
            f"{prefix}_loop_last_tick_timestamp_seconds",
            "Unix time of each loop's last completed pass.",
            ["loop"],
            registry=registry,
        )
        self._faults = Counter(
            f"{prefix}_transient_faults_total",
            "Transient faults (database or broker unreachable) a loop waited out, by loop.",
            ["loop"],
            registry=registry,
        )
        for loop in loops:
            self._last.labels(loop).set_to_current_time()
            self._faults.labels(loop)

    def tick(self, loop: str) -> None:
        self._last.labels(loop).set_to_current_time()

    def fault(self, loop: str) -> None:
        self._faults.labels(loop).inc()


class Backoff:
    """Capped exponential waits of one loop after transient faults (the database or the
    broker away), each counted on the loop's heartbeat; ``ok`` after a good pass."""

    def __init__(
        self, loop: str, heartbeats: Heartbeats, first_s: float = 0.5, cap_s: float = 30.0
    ) -> None:
        self._loop = loop
        self._heartbeats = heartbeats
        self._first_s = first_s
        self._cap_s = cap_s
        self._failures = 0

    async def after(self, exc: Exception) -> None:
        """Wait before the loop tries again after ``exc``; raise ``exc`` again unless it is
        transient (a schema error or a bug is not waited out here)."""
        if is_fatal(exc) or not is_transient(exc):
            raise exc
        self._failures += 1
        self._heartbeats.fault(self._loop)
        wait = min(self._cap_s, self._first_s * 2 ** min(self._failures - 1, 16))
        log.warning("%s: %s; trying again in %.1f s", self._loop, type(exc).__name__, wait)
        await asyncio.sleep(wait)

    def ok(self) -> None:
        self._failures = 0
        self._heartbeats.tick(self._loop)


async def every(
    interval_s: float, step: Callable[[], Awaitable[None]], loop: str, heartbeats: Heartbeats
) -> None:
    """Run ``step`` every ``interval_s`` seconds, for ever. A transient fault is waited out
    (``Backoff``); any other error is logged and the step runs again at its next
    interval; only a schema error (``is_fatal``) ends the loop, and with it the process."""
    backoff = Backoff(loop, heartbeats, cap_s=min(interval_s, 30.0))
    while True:
        try:
            await step()
        except Exception as exc:
            if is_fatal(exc):
                raise
            if is_transient(exc):
                await backoff.after(exc)
                continue
            log.exception("%s: pass failed; trying again in %.0f s", loop, interval_s)
        else:
            backoff.ok()
        await asyncio.sleep(interval_s)


class _GracefulServer(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT it stopped on gracefully is not
    raised again once the lifespan has shut down: the process ends with status 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def serve(config: uvicorn.Config) -> bool:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; whether the app started
    (a lifespan that failed means it did not)."""
    server = _GracefulServer(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return server.started
