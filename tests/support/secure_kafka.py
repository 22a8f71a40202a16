"""A Kafka broker that takes only encrypted, authenticated clients, for the security tests.

``deploy/kafka/kafka.sh`` with ``KAFKA_SECURE=1`` (``deploy/kafka/secure.sh``)
on free ports with a data dir of its own: a SASL_SSL listener (SCRAM-SHA-512,
SCRAM-SHA-256, PLAIN), an SSL listener that requires a client certificate, and
the controller listener on TLS. Its CA and certificates are made by openssl, its
users by ``kafka-storage format --add-scram``, each with a fresh random password.
The development broker on 9092 is not touched.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from slawatch_common.kafka import SaslMechanism, SecurityProtocol, client_options
from slawatch_common.settings import ServiceSettings
from support.net import free_port

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
SERVICES = "slawatch"
"""The user the three services connect as."""
TESTS = "tests"
"""The user of the tests' own clients (topics, producers, readers)."""


class SecureBroker:
    """The broker's ports, files and users; ``start`` and ``stop`` it (``stop`` deletes its
    data)."""

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="slawatch-secure-kafka-"))
        self.port, self.ssl_port, self.controller_port = free_port(), free_port(), free_port()
        self.passwords = {SERVICES: secrets.token_hex(12), TESTS: secrets.token_hex(12)}
        self.started_in: float | None = None
        """Seconds from ``start`` until the first authenticated client was served."""
        self._env = os.environ | {
            "KAFKA_SECURE": "1",
            "KAFKA_DATA_DIR": str(self.data_dir),
            "KAFKA_PORT": str(self.port),
            "KAFKA_SSL_PORT": str(self.ssl_port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_SASL_USERS": " ".join(f"{u}={p}" for u, p in self.passwords.items()),
            "KAFKA_HEAP": "-Xms128m -Xmx512m",
            "KAFKA_TLS_DAYS": "2",
        }

    @property
    def bootstrap(self) -> str:
        """The SASL_SSL listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def ssl_bootstrap(self) -> str:
        """The SSL listener (a client certificate of the CA required, no SASL)."""
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    @property
    def client_cert(self) -> tuple[Path, Path]:
        """A client certificate of the broker's CA and its key."""
        return self.data_dir / "tls" / "client.crt", self.data_dir / "tls" / "client.key"

    def settings(
        self,
        user: str = TESTS,
        *,
        mechanism: SaslMechanism = "SCRAM-SHA-512",
        password: str | None = None,
        protocol: SecurityProtocol = "SASL_SSL",
    ) -> dict[str, Any]:
        """``ServiceSettings`` fields for ``user`` (its password unless ``password``); with
        ``protocol="SSL"`` the client certificate instead of SASL."""
        fields: dict[str, Any] = {
            "kafka_security_protocol": protocol,
            "kafka_ssl_ca_file": self.ca_file,
        }
        if protocol == "SSL":
            cert, key = self.client_cert
            return fields | {"kafka_ssl_cert_file": cert, "kafka_ssl_key_file": key}
        return fields | {
            "kafka_sasl_mechanism": mechanism,
            "kafka_sasl_username": user,
            "kafka_sasl_password": self.passwords[user] if password is None else password,
        }

    def options(self, user: str = TESTS, **how: Any) -> dict[str, Any]:
        """The aiokafka keyword arguments of ``settings(user, **how)``, built the way the
        services build theirs (``kafka.client_options``)."""
        return client_options(ServiceSettings(**self.settings(user, **how)))

    def env(self, user: str = SERVICES) -> dict[str, str]:
        """The ``SLAWATCH_KAFKA_*`` environment of a service connecting as ``user`` with
        SASL_SSL, SCRAM-SHA-512 and the broker's CA."""
        return {
            "SLAWATCH_KAFKA_BOOTSTRAP": self.bootstrap,
            "SLAWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SLAWATCH_KAFKA_SSL_CA_FILE": str(self.ca_file),
            "SLAWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SLAWATCH_KAFKA_SASL_USERNAME": user,
            "SLAWATCH_KAFKA_SASL_PASSWORD": self.passwords[user],
        }

    def start(self) -> None:
        """Start the broker and wait (at most 90 s) until it serves an authenticated client."""
        began = time.monotonic()
        self._run("start")
        asyncio.run(self._serving(began + 90))
        self.started_in = time.monotonic() - began

    def stop(self) -> None:
        """Stop the broker and delete its data, certificates and users."""
        try:
            self._run("stop")
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    async def _serving(self, deadline: float) -> None:
        while True:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap, request_timeout_ms=5000, **self.options()
            )
            try:
                await admin.start()
                await admin.list_topics()
                return
            except Exception:  # still starting: KafkaConnectionError and kin
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
            finally:
                await admin.close()

    def _run(self, command: str) -> None:
        done = subprocess.run(
            [str(KAFKA_SH), command],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed: {done.stdout}{done.stderr}")
