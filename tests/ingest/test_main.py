"""The ``slawatch-ingest`` console script, run as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from slawatch_common.topics import Topics
from support.net import free_port

SCRIPT = Path(sys.executable).with_name("slawatch-ingest")


async def test_invalid_settings_end_the_process_with_a_clear_message() -> None:
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        env=os.environ | {"SLAWATCH_INGEST_PORT": "not-a-port"},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "SLAWATCH_INGEST_PORT" in stderr.decode()


async def test_an_invalid_webhook_configuration_ends_the_process(tmp_path: Path) -> None:
    config = tmp_path / "slawatch.yaml"
    config.write_text("ingest:\n  sources:\n    jira: {service_labels: [x]}\n")
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        env=os.environ | {"SLAWATCH_CONFIG_FILE": str(config)},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "ingest.sources.jira: service_labels: not an option" in stderr.decode()


@pytest.mark.kafka
async def test_serves_until_sigterm_then_closes_the_producer(
    kafka_bootstrap: str, topics: Topics
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        SCRIPT,
        env=os.environ
        | {
            "SLAWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "SLAWATCH_TOPIC_PREFIX": topics.prefix,
            "SLAWATCH_INGEST_PORT": str(port),
        },
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # a graceful shutdown ends with status 0 (slawatch_common.runtime.serve)
    assert process.returncode == 0
    log = stderr.decode()
    assert "Application shutdown complete" in log
    assert "producer closed" in log


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while True:
            assert process.returncode is None, "slawatch-ingest exited"
            assert time.monotonic() < deadline, "slawatch-ingest never became ready"
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            await asyncio.sleep(0.1)
