"""The Kafka clients' connection options built from the settings (``kafka.client_options``).

TLS and SASL settings become aiokafka keyword arguments in one place; combinations
that cannot work, or would not do what they seem to, and TLS files that cannot be
used are refused when the settings are read, naming each setting, so a service
with them exits at start. Certificates are made by openssl for the module.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from slawatch_common.kafka import KafkaSettingsError, client_options, settings_problems
from slawatch_common.settings import DevelopmentValuesError, ServiceSettings

BIN = Path(sys.executable).parent


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a client certificate it signed with its key, and a key of another pair."""
    folder = tmp_path_factory.mktemp("kafka-tls")
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(ca_key),
        "-out", str(ca), "-subj", "/CN=options test CA",
    )  # fmt: skip
    key, csr, cert = folder / "client.key", folder / "client.csr", folder / "client.crt"
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=client",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "1", "-out", str(cert),
    )  # fmt: skip
    combined = folder / "client.pem"
    combined.write_bytes(key.read_bytes() + cert.read_bytes())
    other = folder / "other.key"
    openssl("genpkey", "-algorithm", "RSA", "-out", str(other))
    return {"ca": ca, "cert": cert, "key": key, "combined": combined, "other_key": other}


def scram(**more: Any) -> dict[str, Any]:
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "ingest",
        "kafka_sasl_password": "s3cret",
        **more,
    }


def refused(**fields: Any) -> str:
    """The message with which the settings ``fields`` are refused."""
    with pytest.raises(ValidationError) as caught:
        ServiceSettings(**fields)
    return str(caught.value)


def test_by_default_plaintext_and_nothing_else() -> None:
    assert client_options(ServiceSettings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_with_scram_checks_the_broker_against_the_ca(pki: dict[str, Path]) -> None:
    options = client_options(ServiceSettings(**scram(kafka_ssl_ca_file=pki["ca"])))
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ingest",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    # the CA file only, not the system's CAs as well
    [only] = context.get_ca_certs()
    assert "options test CA" in str(only["subject"])


def test_tls_without_a_ca_file_uses_the_system_cas() -> None:
    options = client_options(ServiceSettings(kafka_security_protocol="SSL"))
    assert options["ssl_context"].verify_mode is ssl.CERT_REQUIRED
    assert "sasl_mechanism" not in options


@pytest.mark.parametrize("key", ["key", None])
def test_a_client_certificate_with_its_key_in_a_file_of_its_own_or_in_the_same(
    pki: dict[str, Path], key: str | None
) -> None:
    fields: dict[str, Any] = {
        "kafka_security_protocol": "SSL",
        "kafka_ssl_ca_file": pki["ca"],
        "kafka_ssl_cert_file": pki["cert"] if key else pki["combined"],
        "kafka_ssl_key_file": pki[key] if key else None,
    }
    assert isinstance(client_options(ServiceSettings(**fields))["ssl_context"], ssl.SSLContext)


def test_sasl_plaintext_with_plain_is_a_development_value() -> None:
    settings = ServiceSettings(
        **scram(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN"),
        environment="production",
    )
    assert "ssl_context" not in client_options(settings)
    assert settings.development_values() == [
        "SLAWATCH_ADMIN_TOKENS: holds the development token 'dev-admin-token'",
        "SLAWATCH_KAFKA_SECURITY_PROTOCOL: SASL PLAIN sends the password in clear",
    ]
    with pytest.raises(DevelopmentValuesError, match="SLAWATCH_KAFKA_SECURITY_PROTOCOL"):
        settings.refuse_development_values()
    # SCRAM sends no password, over TLS PLAIN's is encrypted
    for fields in (
        scram(kafka_security_protocol="SASL_PLAINTEXT"),
        scram(kafka_sasl_mechanism="PLAIN"),
    ):
        assert not any("KAFKA" in v for v in ServiceSettings(**fields).development_values())


def test_sasl_without_its_credentials_names_each() -> None:
    message = refused(kafka_security_protocol="SASL_SSL", kafka_sasl_username="")
    for setting in (
        "SLAWATCH_KAFKA_SASL_MECHANISM",
        "SLAWATCH_KAFKA_SASL_USERNAME",
        "SLAWATCH_KAFKA_SASL_PASSWORD",
    ):
        assert f"{setting}: SLAWATCH_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs it" in message


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_credentials_for_a_protocol_without_sasl_are_refused(protocol: str) -> None:
    message = refused(**scram(kafka_security_protocol=protocol))
    for setting in (
        "SLAWATCH_KAFKA_SASL_MECHANISM",
        "SLAWATCH_KAFKA_SASL_USERNAME",
        "SLAWATCH_KAFKA_SASL_PASSWORD",
    ):
        assert f"{setting}: set, but SLAWATCH_KAFKA_SECURITY_PROTOCOL={protocol}" in message
    assert "s3cret" not in message


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_tls_files_for_a_protocol_without_tls_are_refused(
    pki: dict[str, Path], protocol: str
) -> None:
    message = refused(**scram(kafka_security_protocol=protocol, kafka_ssl_ca_file=pki["ca"]))
    assert "SLAWATCH_KAFKA_SSL_CA_FILE: set, but" in message
    assert "does not use TLS" in message


def test_a_missing_or_unusable_ca_file_is_named(pki: dict[str, Path], tmp_path: Path) -> None:
    message = refused(**scram(kafka_ssl_ca_file=tmp_path / "missing.crt"))
    assert "SLAWATCH_KAFKA_SSL_CA_FILE: cannot use" in message
    assert "No such file" in message
    message = refused(**scram(kafka_ssl_ca_file=pki["key"]))  # a key, no certificate
    assert "SLAWATCH_KAFKA_SSL_CA_FILE: cannot use" in message


def test_a_key_that_does_not_match_the_certificate_is_named(pki: dict[str, Path]) -> None:
    message = refused(**scram(kafka_ssl_cert_file=pki["cert"], kafka_ssl_key_file=pki["other_key"]))
    assert "SLAWATCH_KAFKA_SSL_CERT_FILE, SLAWATCH_KAFKA_SSL_KEY_FILE: cannot use" in message


def test_a_key_without_its_certificate_is_refused(pki: dict[str, Path]) -> None:
    message = refused(**scram(kafka_ssl_key_file=pki["key"]))
    assert "SLAWATCH_KAFKA_SSL_KEY_FILE: the key of a client certificate" in message


def test_replication_settings() -> None:
    settings = ServiceSettings(kafka_replication_factor=3, kafka_min_insync_replicas=2)
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)
    assert ServiceSettings().kafka_min_insync_replicas is None  # the broker's default
    assert "SLAWATCH_KAFKA_MIN_INSYNC_REPLICAS: 2 is more than" in refused(
        kafka_min_insync_replicas=2
    )
    with pytest.raises(ValidationError):
        ServiceSettings(kafka_replication_factor=0)


def test_read_from_the_environment(pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SLAWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "SLAWATCH_KAFKA_SSL_CA_FILE": str(pki["ca"]),
        "SLAWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "SLAWATCH_KAFKA_SASL_USERNAME": "engine",
        "SLAWATCH_KAFKA_SASL_PASSWORD": "from-env",
        "SLAWATCH_KAFKA_REPLICATION_FACTOR": "3",
        "SLAWATCH_KAFKA_MIN_INSYNC_REPLICAS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    settings = ServiceSettings()
    assert "from-env" not in repr(settings)
    assert settings_problems(settings) == []
    options = client_options(settings)
    assert (options["sasl_mechanism"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-256",
        "from-env",
    )
    monkeypatch.setenv("SLAWATCH_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        ServiceSettings()


def test_client_options_refuse_settings_that_skipped_validation() -> None:
    settings = ServiceSettings.model_construct(
        **(ServiceSettings().model_dump() | {"kafka_security_protocol": "SASL_SSL"})
    )
    with pytest.raises(KafkaSettingsError, match="SLAWATCH_KAFKA_SASL_MECHANISM"):
        client_options(settings)


@pytest.mark.parametrize("script", ["slawatch-ingest", "slawatch-engine", "slawatch-notifier"])
def test_a_service_with_a_missing_ca_file_exits_at_start_naming_it(
    script: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAWATCH_")} | {
        "SLAWATCH_ENV": "development",
        "SLAWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "SLAWATCH_KAFKA_SECURITY_PROTOCOL": "SSL",
        "SLAWATCH_KAFKA_SSL_CA_FILE": str(tmp_path / "missing-ca.crt"),
    }
    done = subprocess.run(
        [str(BIN / script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "SLAWATCH_KAFKA_SSL_CA_FILE: cannot use" in done.stderr, done.stderr
