"""Fixtures of the end-to-end tests: the three services as processes (``e2e.system``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy.dev.sms_sink import SmsSink

from e2e.system import System, run_system
from slawatch_common.topics import Topics
from support.secure_kafka import SecureBroker
from support.smtp import SmtpSink


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[SecureBroker]:
    """A broker of the module's own that takes only TLS + SASL clients (and TLS with a client
    certificate), on free ports (``support.secure_kafka``); stopped and deleted after the
    module, so its JVM does not share the two cores with the tests that follow."""
    broker = SecureBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def system_env() -> dict[str, str]:
    """Settings the services get besides the rig's own; a test module overrides it."""
    return {}


@pytest.fixture
def system(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: Topics,
    pg_url: str,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
    system_env: dict[str, str],
) -> Iterator[System]:
    """Ingest, engine and notifier as OS processes on this test's topics and database."""
    with run_system(
        tmp_path, kafka_bootstrap, topics, pg_url, smtp_sink, sms_sink, system_env
    ) as running:
        yield running
