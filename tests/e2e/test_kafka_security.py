"""Kafka with TLS and SASL, on a broker that takes only encrypted, authenticated clients.

The broker is the module's ``secure_kafka`` (``deploy/kafka/kafka.sh`` with
``KAFKA_SECURE=1``: a CA and certificates made by openssl, SCRAM users made by
``kafka-storage format --add-scram``). The three services connect with
SASL_SSL and SCRAM-SHA-512, checking the broker against its CA, and a P1
ticket gets its warning mail and its breach SMS and mail as on the development
broker; the tests' own clients (topics, reads) connect the same way. A client
in clear, over TLS without SASL, with a wrong password or as an unknown user,
or trusting another CA, is refused; the TLS listener without SASL takes a
client certificate of the CA and refuses a client without one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError

from e2e.system import System, created, read_topic, wait_until
from slawatch_common.kafka import TopicSetupError, client_options, delete_topics, ensure_topics
from slawatch_common.settings import ServiceSettings
from slawatch_common.topics import Topics
from support.secure_kafka import SERVICES, TESTS, SecureBroker

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

_DYNAMIC_TOPIC_CONFIG = 1
"""``config_source`` of a value set on the topic itself (not the broker's default)."""


@pytest.fixture
def kafka_bootstrap(secure_kafka: SecureBroker) -> str:
    return secure_kafka.bootstrap


@pytest.fixture
async def topics(secure_kafka: SecureBroker) -> AsyncIterator[Topics]:
    """Fresh topics on the secure broker, made and deleted by the tests' own user."""
    fresh = Topics(prefix=f"s{uuid.uuid4().hex[:12]}")
    options = secure_kafka.options()
    await ensure_topics(secure_kafka.bootstrap, fresh.all(), partitions=2, options=options)
    yield fresh
    await delete_topics(secure_kafka.bootstrap, fresh.all(), options=options)


@pytest.fixture
def system_env(secure_kafka: SecureBroker) -> dict[str, str]:
    """The services connect as ``SERVICES`` with SASL_SSL, SCRAM-SHA-512 and the CA file."""
    return secure_kafka.env(SERVICES) | {"SLAWATCH_KAFKA_MIN_INSYNC_REPLICAS": "1"}


async def connect(bootstrap: str, options: dict[str, Any]) -> list[str]:
    """The topics an admin client with ``options`` lists; raises when it cannot connect."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **options)
    try:
        await asyncio.wait_for(admin.start(), 30)
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


async def round_trip(bootstrap: str, topic: str, options: dict[str, Any]) -> bytes:
    """Produce one record to ``topic`` and read it back, both with ``options``."""
    value = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value=value, partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **options
    )
    await consumer.start()
    try:
        consumer.assign([meta.topic_partition])
        consumer.seek(meta.topic_partition, meta.offset)
        batch = await consumer.getmany(meta.topic_partition, timeout_ms=10_000)
        [record, *_] = batch[meta.topic_partition]
        got: bytes = record.value
        return got
    finally:
        await consumer.stop()


async def start_and_stop(kind: str, bootstrap: str, topic: str, options: dict[str, Any]) -> None:
    """Start an aiokafka client of ``kind`` (admin, producer, consumer of ``topic``), then
    stop it; raises when it cannot connect."""
    if kind == "admin":
        await connect(bootstrap, options)
        return
    client: AIOKafkaProducer | AIOKafkaConsumer = (
        AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
        if kind == "producer"
        else AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, **options)
    )
    try:
        await asyncio.wait_for(client.start(), 30)
    finally:
        await client.stop()


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """The certificate of a CA that did not sign the broker's."""
    other = tmp_path / "other-ca.crt"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other),
            "-subj", "/CN=another CA",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return other


# --- the services --------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.smtp
def test_services_on_tls_and_scram_send_the_warning_and_the_breach(
    system: System, secure_kafka: SecureBroker, topics: Topics
) -> None:
    t0 = datetime.now(UTC)
    # assigned to a configured person: the warning goes to the address the configuration
    # gives (one only the event carries is used only from sources it trusts)
    assert system.post(created("S-1", t0, assignee_id="oncall")).status_code == 202

    wait_until(lambda: len(system.mails("S-1")) == 2, 20, "S-1 warning and breach mails")
    wait_until(lambda: len(system.sms_about("S-1")) == 1, 5, "S-1 breach SMS")
    warning_mail, breach_mail = sorted(system.mails("S-1"), key=lambda m: m[0])
    assert warning_mail[1] == ["oncall@example.com"]
    assert breach_mail[1] == ["supervisor@example.com"]
    assert system.sms_about("S-1")[0].to == "+8613800000002"
    start = t0.timestamp()
    assert warning_mail[0] >= start + 2  # warning at 50 % of 4 s, breach at 100 %
    assert breach_mail[0] >= start + 4

    # the ticket and its SLA events went through the secure broker, readable by a client
    # with credentials only
    tickets = read_topic(secure_kafka.bootstrap, topics.tickets, secure_kafka.options())
    assert any(r.value and b'"S-1"' in r.value for r in tickets)
    sla = read_topic(secure_kafka.bootstrap, topics.sla, secure_kafka.options())
    stages = {json.loads(r.value)["type"] for r in sla if r.value and b"S-1" in r.value}
    assert {"sla.warning", "sla.breach"} <= stages, stages


# --- refused clients -----------------------------------------------------------------


async def test_a_client_in_clear_on_the_tls_port_is_refused(secure_kafka: SecureBroker) -> None:
    with pytest.raises(KafkaConnectionError):
        await connect(secure_kafka.bootstrap, {})


@pytest.mark.parametrize("client", ["admin", "producer", "consumer"])
async def test_a_client_with_tls_but_no_credentials_is_refused(
    secure_kafka: SecureBroker, topics: Topics, client: str
) -> None:
    tls_only = {
        "security_protocol": "SSL",
        "ssl_context": secure_kafka.options()["ssl_context"],
    }
    with pytest.raises(KafkaConnectionError):
        await start_and_stop(client, secure_kafka.bootstrap, topics.tickets, tls_only)


@pytest.mark.parametrize(
    ("mechanism", "user", "password"),
    [
        ("SCRAM-SHA-512", TESTS, "not-the-password"),
        ("SCRAM-SHA-256", TESTS, "not-the-password"),
        ("PLAIN", TESTS, "not-the-password"),
        ("SCRAM-SHA-512", "nobody", "any-password"),
    ],
)
async def test_wrong_credentials_are_refused(
    secure_kafka: SecureBroker,
    caplog: pytest.LogCaptureFixture,
    mechanism: str,
    user: str,
    password: str,
) -> None:
    options = secure_kafka.options(user, mechanism=mechanism, password=password)
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await connect(secure_kafka.bootstrap, options)
    assert "SaslAuthenticationFailed" in caplog.text, caplog.text


async def test_a_client_trusting_another_ca_does_not_connect(
    secure_kafka: SecureBroker, other_ca: Path
) -> None:
    fields = secure_kafka.settings() | {"kafka_ssl_ca_file": other_ca}
    with pytest.raises(KafkaConnectionError):
        await connect(secure_kafka.bootstrap, client_options(ServiceSettings(**fields)))


# --- clients with credentials ----------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
async def test_each_mechanism_produces_and_consumes(
    secure_kafka: SecureBroker, topics: Topics, mechanism: Any
) -> None:
    options = secure_kafka.options(SERVICES, mechanism=mechanism)
    assert topics.tickets in await connect(secure_kafka.bootstrap, options)
    value = await round_trip(secure_kafka.bootstrap, topics.tickets, options)
    assert len(value) == 32


async def test_the_tls_listener_takes_a_client_certificate_and_refuses_none(
    secure_kafka: SecureBroker, topics: Topics
) -> None:
    with_cert = secure_kafka.options(protocol="SSL")
    await round_trip(secure_kafka.ssl_bootstrap, topics.tickets, with_cert)
    without = {
        "security_protocol": "SSL",
        "ssl_context": secure_kafka.options()["ssl_context"],  # the CA only, no certificate
    }
    with pytest.raises(KafkaConnectionError):
        await connect(secure_kafka.ssl_bootstrap, without)


async def test_topics_get_the_replication_settings(secure_kafka: SecureBroker) -> None:
    options = secure_kafka.options()
    name = f"s{uuid.uuid4().hex[:12]}.isr"
    await ensure_topics(secure_kafka.bootstrap, (name,), 1, options=options, min_insync_replicas=1)
    admin = AIOKafkaAdminClient(bootstrap_servers=secure_kafka.bootstrap, **options)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        entries = {entry[0]: entry for entry in response.resources[0][4]}
        assert entries["min.insync.replicas"][1:4:2] == ("1", _DYNAMIC_TOPIC_CONFIG)
    finally:
        await admin.close()
        await delete_topics(secure_kafka.bootstrap, (name,), options=options)
    # one broker: two replicas cannot be placed, and the broker says so
    with pytest.raises(TopicSetupError, match="replication factor"):
        await ensure_topics(
            secure_kafka.bootstrap, (f"{name}2",), 1, options=options, replication_factor=2
        )
