"""Kafka plumbing: topic creation, the durable producer, consumer defaults, and the
connection options (TLS, SASL) every client of a service is built with.

Every producer here is idempotent with ``acks=all``: a send that returns has
been written to the broker; one that raises may or may not have been, so a
caller retries with the same ``event_id`` and consumers deduplicate.

``client_options(settings)`` is the one place where the ``SLAWATCH_KAFKA_*``
security settings become aiokafka keyword arguments; every admin client,
producer and consumer of the services gets them (the ``options`` keyword of
the functions here, ``**options`` where a service builds a consumer itself).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_PROTOCOL = "SLAWATCH_KAFKA_SECURITY_PROTOCOL"
_CA, _CERT, _KEY = (
    "SLAWATCH_KAFKA_SSL_CA_FILE",
    "SLAWATCH_KAFKA_SSL_CERT_FILE",
    "SLAWATCH_KAFKA_SSL_KEY_FILE",
)
_MECHANISM, _USERNAME, _PASSWORD = (
    "SLAWATCH_KAFKA_SASL_MECHANISM",
    "SLAWATCH_KAFKA_SASL_USERNAME",
    "SLAWATCH_KAFKA_SASL_PASSWORD",
)


class TopicSetupError(RuntimeError):
    """The broker refused to create a topic for a reason other than its existence."""


class KafkaSettingsError(ValueError):
    """Kafka settings that do not work together, or TLS files that cannot be used; the
    message names each setting at fault."""


class KafkaSettings(Protocol):
    """The settings ``client_options`` reads (``ServiceSettings`` has them)."""

    @property
    def kafka_security_protocol(self) -> SecurityProtocol: ...
    @property
    def kafka_ssl_ca_file(self) -> Path | None: ...
    @property
    def kafka_ssl_cert_file(self) -> Path | None: ...
    @property
    def kafka_ssl_key_file(self) -> Path | None: ...
    @property
    def kafka_sasl_mechanism(self) -> SaslMechanism | None: ...
    @property
    def kafka_sasl_username(self) -> str | None: ...
    @property
    def kafka_sasl_password(self) -> SecretStr | None: ...
    @property
    def kafka_replication_factor(self) -> int: ...
    @property
    def kafka_min_insync_replicas(self) -> int | None: ...


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments of every aiokafka client (admin, producer, consumer) for
    ``settings``: ``security_protocol``, with TLS an ``ssl_context`` (the broker checked
    against ``SLAWATCH_KAFKA_SSL_CA_FILE``, else the system CAs, and its host name always;
    the client certificate when one is set), with SASL the mechanism and credentials.

    Raises ``KafkaSettingsError`` naming each setting at fault: combinations that
    cannot work, or that would not do what they seem to (credentials or certificates
    set for a protocol that does not send them), and TLS files that cannot be read.
    """
    problems: list[str] = []
    options = _client_options(settings, problems)
    if problems:
        raise KafkaSettingsError("invalid Kafka settings:\n  " + "\n  ".join(problems))
    return options


def settings_problems(settings: KafkaSettings) -> list[str]:
    """Every problem of the Kafka settings, ``"SLAWATCH_X: why"`` (none: they work): those
    ``client_options`` refuses and a ``min.insync.replicas`` above the replication factor,
    with which no ``acks=all`` write could succeed."""
    problems: list[str] = []
    _client_options(settings, problems)
    factor, least = settings.kafka_replication_factor, settings.kafka_min_insync_replicas
    if least is not None and least > factor:
        problems.append(
            f"SLAWATCH_KAFKA_MIN_INSYNC_REPLICAS: {least} is more than "
            f"SLAWATCH_KAFKA_REPLICATION_FACTOR={factor}; no acks=all write could succeed"
        )
    return problems


def _client_options(settings: KafkaSettings, problems: list[str]) -> dict[str, Any]:
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    tls, sasl = protocol in ("SSL", "SASL_SSL"), protocol.startswith("SASL_")
    files = {
        _CA: settings.kafka_ssl_ca_file,
        _CERT: settings.kafka_ssl_cert_file,
        _KEY: settings.kafka_ssl_key_file,
    }
    credentials = {
        _MECHANISM: settings.kafka_sasl_mechanism,
        _USERNAME: settings.kafka_sasl_username,
        _PASSWORD: settings.kafka_sasl_password,
    }
    if not tls:
        problems += [
            f"{name}: set, but {_PROTOCOL}={protocol} does not use TLS (SSL or SASL_SSL do)"
            for name, value in files.items()
            if value is not None
        ]
    elif files[_KEY] is not None and files[_CERT] is None:
        problems.append(f"{_KEY}: the key of a client certificate, but {_CERT} is not set")
    else:
        options["ssl_context"] = _ssl_context(files[_CA], files[_CERT], files[_KEY], problems)
    if not sasl:
        problems += [
            f"{name}: set, but {_PROTOCOL}={protocol} does not use SASL "
            "(SASL_SSL or SASL_PLAINTEXT do)"
            for name, value in credentials.items()
            if _given(value)
        ]
        return options
    missing = [name for name, value in credentials.items() if not _given(value)]
    problems += [f"{name}: {_PROTOCOL}={protocol} needs it" for name in missing]
    password = settings.kafka_sasl_password
    options.update(
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_plain_username=settings.kafka_sasl_username,
        sasl_plain_password=None if password is None else password.get_secret_value(),
    )
    return options


def _given(value: str | SecretStr | None) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return bool(value)


def _ssl_context(
    ca: Path | None, cert: Path | None, key: Path | None, problems: list[str]
) -> ssl.SSLContext | None:
    """A client context checking the broker's certificate and host name (aiokafka's
    ``create_ssl_context``), the client certificate loaded when ``cert`` is set."""
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=None if ca is None else str(ca))
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"{_CA}: cannot use {ca} as CA certificates: {exc}")
        return None
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), None if key is None else str(key))
        except (OSError, ssl.SSLError) as exc:
            named = _CERT if key is None else f"{_CERT}, {_KEY}"
            problems.append(f"{named}: cannot use {cert} (key {key or 'in it'}): {exc}")
            return None
    return context


async def ensure_topics(
    bootstrap: str,
    topics: tuple[str, ...],
    partitions: int,
    *,
    attempts: int = 60,
    options: Mapping[str, Any] | None = None,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
) -> None:
    """Create ``topics`` with ``partitions`` partitions where they do not exist.

    Idempotent. Waits (up to ``attempts`` half-second tries) for a broker that
    is still starting; raises ``TopicSetupError`` on any other refusal.
    ``options`` are the clients' connection options (``client_options``); the
    topics created get ``replication_factor`` replicas and, when it is given,
    ``min.insync.replicas`` (else the broker's default). A topic that exists is
    left as it is.
    """
    configs = {}
    if min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(min_insync_replicas)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(options or {}))
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except Exception:  # the broker is not up yet: KafkaConnectionError and kin
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs=configs,
                )
                for name in topics
            ]
        )
        for name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise TopicSetupError(f"creating topic {name}: error {code} {rest}")
    finally:
        await admin.close()
    log.info("topics ready: %s (%d partitions)", ", ".join(topics), partitions)


async def delete_topics(
    bootstrap: str, topics: tuple[str, ...], *, options: Mapping[str, Any] | None = None
) -> None:
    """Delete ``topics`` (those that exist), for tests and benchmarks that make throwaway
    topics: a broker keeps files open for every partition it holds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(options or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        gone = [name for name in topics if name in existing]
        if gone:
            await admin.delete_topics(gone)
    finally:
        await admin.close()


def durable_producer(
    bootstrap: str,
    *,
    request_timeout_ms: int = 10_000,
    linger_ms: int = 2,
    options: Mapping[str, Any] | None = None,
) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer; start it before use, stop it after.

    ``request_timeout_ms`` bounds how long a send waits for the broker before it
    fails, so that a caller can answer "unavailable" instead of hanging.
    ``linger_ms`` is how long a send waits for company in its batch: a few ms
    suit a background publisher; a request that waits for its own ack is better
    served at once (0), while earlier sends are in flight the next batch
    collects anyway. ``options`` are the connection options (``client_options``).
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=request_timeout_ms,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        compression_type=None,
        **(options or {}),
    )


async def start_producer(
    bootstrap: str,
    *,
    request_timeout_ms: int = 10_000,
    linger_ms: int = 2,
    attempts: int = 60,
    options: Mapping[str, Any] | None = None,
) -> AIOKafkaProducer:
    """A started ``durable_producer``, waiting (half-second tries) for a broker coming up."""
    for attempt in range(attempts):
        producer = durable_producer(
            bootstrap, request_timeout_ms=request_timeout_ms, linger_ms=linger_ms, options=options
        )
        try:
            await producer.start()
            return producer
        except Exception:  # KafkaConnectionError and kin: not up yet
            await producer.stop()
            if attempt == attempts - 1:
                raise
            log.warning("broker %s not reachable yet; retrying", bootstrap)
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")
