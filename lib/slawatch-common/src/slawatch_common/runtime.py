"""Process plumbing shared by the services: logging, configuration files, workers.

A service is one process: a FastAPI app served by uvicorn whose lifespan starts
the service's background workers. A worker that fails ends the process with a
non-zero status (the supervisor restarts it); nothing catches and carries on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

log = logging.getLogger(__name__)

EXIT_WORKER_FAILED = 70


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


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
