"""Typed settings every service shares, read from ``SLAWATCH_*`` environment variables.

Built once in a service's ``main`` and passed in; nothing reads the
environment at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated

from fastapi import Header, HTTPException
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from slawatch_common.auth import ApiToken, Scope, TokenBook, authorised
from slawatch_common.jwt_auth import JwksKeys, JwtVerifier
from slawatch_common.kafka import KafkaSettingsError, SaslMechanism, SecurityProtocol
from slawatch_common.kafka import settings_problems as kafka_problems
from slawatch_common.topics import Topics

DEV_ADMIN_TOKEN = "dev-admin-token"
DEVELOPMENT = "development"


class DevelopmentValuesError(ValueError):
    """Development values in a service started outside development mode."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLAWATCH_",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        hide_input_in_errors=True,  # settings hold passwords and tokens: errors name, not show
    )

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field("slawatch", pattern=r"^[A-Za-z0-9._-]+$")
    kafka_partitions: int = Field(4, ge=1, le=1024, description="Partitions of created topics.")
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="How every Kafka client connects: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or "
        "SASL_SSL (TLS, then SASL).",
    )
    kafka_ssl_ca_file: Path | None = Field(
        None,
        description="PEM CA certificates the broker's certificate is checked against (SSL, "
        "SASL_SSL); unset: the system CAs. The host name is always checked.",
    )
    kafka_ssl_cert_file: Path | None = Field(
        None, description="PEM client certificate (chain) shown to the broker (SSL, SASL_SSL)."
    )
    kafka_ssl_key_file: Path | None = Field(
        None, description="PEM key of the client certificate, when not in its file."
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_SSL, SASL_PLAINTEXT)."
    )
    kafka_sasl_username: str | None = Field(None, description="The SASL user of the service.")
    kafka_sasl_password: SecretStr | None = Field(None, description="Its SASL password.")
    kafka_replication_factor: int = Field(
        1, ge=1, le=32_767, description="Replicas of each topic a service creates."
    )
    kafka_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of each topic a service creates; unset: the broker's "
        "default.",
    )
    config_file: Path = Field(Path("deploy/config/slawatch.yaml"), description="Policy YAML.")
    http_host: str = "127.0.0.1"
    environment: str = Field(
        "production",
        validation_alias=AliasChoices("SLAWATCH_ENV"),
        description="development (make run and the tests set it) lets a service start with "
        "the development defaults; anything else is production, where a service refuses "
        "them at start, naming each setting.",
    )
    admin_tokens: tuple[str, ...] = Field(
        (DEV_ADMIN_TOKEN,),
        min_length=1,
        description="Bearer tokens of the operations API (dead letters, redrive), as a JSON "
        "list in SLAWATCH_ADMIN_TOKENS.",
    )
    api_tokens: tuple[ApiToken, ...] = Field(
        (),
        description="Bearer tokens with their scopes, as a JSON list in SLAWATCH_API_TOKENS: "
        '[{"name": "grafana", "sha256": "<hex of the token\'s SHA-256>", "scopes": '
        '["sla:read"]}] (slawatch_common/auth.py lists the scopes).',
    )
    jwt_jwks: str | None = Field(
        None,
        description="JWT bearer tokens (RS256, ES256) are accepted when set: the JWKS of "
        "their issuer, an https URL or a file path (slawatch_common/jwt_auth.py).",
    )
    jwt_issuer: str | None = Field(None, description="The iss a JWT must carry, when set.")
    jwt_audience: str | None = Field(None, description="The aud a JWT must carry, when set.")
    jwt_scope_claim: str = Field(
        "scope", description="The JWT claim with its scopes (space-separated or a list)."
    )
    jwt_sources_claim: str = Field(
        "slawatch_sources",
        description="The JWT claim listing the sources an events:write token may post for; "
        "absent: any source no webhook or bound token protects.",
    )
    metrics_token: str | None = Field(
        None,
        description="When set, /metrics answers only a request with this bearer token "
        "(Prometheus: authorization.credentials in the scrape config); unset, it is open "
        "like the probes.",
    )
    retention_days: int = Field(
        396,
        ge=1,
        le=36_500,
        description="Days a record is kept once it is settled (sent notifications, resolved "
        "tickets' snapshots, dead letters); 396 (13 months) covers a yearly review.",
    )
    retention_first_round_s: float = Field(
        300.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="Seconds after start before the first retention round: a service's "
        "first minutes are for catching up with its topics.",
    )
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _kafka_settings_work(self) -> ServiceSettings:
        """Kafka settings that cannot work together, or TLS files that cannot be read, fail
        here, at start, naming each setting (``kafka.settings_problems``)."""
        if problems := kafka_problems(self):
            raise KafkaSettingsError("invalid Kafka settings: " + "; ".join(problems))
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def token_book(self, plain: Mapping[Scope, Sequence[str]] | None = None) -> TokenBook:
        """The tokens this service accepts: ``SLAWATCH_API_TOKENS``, the admin tokens and
        the service's own (``plain``, by scope)."""
        return TokenBook.of(
            self.api_tokens, {Scope.ADMIN: self.admin_tokens, **(plain or {})}, self.jwt_verifier()
        )

    def metrics_access(self) -> Callable[..., None]:
        """The FastAPI dependency guarding ``/metrics``: open when no ``metrics_token`` is
        set; else 401 without that bearer token."""
        token = self.metrics_token

        def metrics_reader(authorization: Annotated[str | None, Header()] = None) -> None:
            if token is not None and not authorised(authorization, [token]):
                raise HTTPException(
                    401, "the metrics token is required", headers={"WWW-Authenticate": "Bearer"}
                )

        return metrics_reader

    def jwt_verifier(self) -> JwtVerifier | None:
        """The verifier of JWT bearer tokens, when ``SLAWATCH_JWT_JWKS`` is set; a JWKS file
        that cannot be read raises ``JwksError`` naming the setting."""
        if self.jwt_jwks is None:
            return None
        return JwtVerifier(
            JwksKeys(self.jwt_jwks),
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            scope_claim=self.jwt_scope_claim,
            sources_claim=self.jwt_sources_claim,
        )

    def development_values(self) -> list[str]:
        """Each setting left at a development value: ``"SLAWATCH_X: why"``."""
        found = []
        if DEV_ADMIN_TOKEN in self.admin_tokens:
            found.append(f"SLAWATCH_ADMIN_TOKENS: holds the development token {DEV_ADMIN_TOKEN!r}")
        if self.jwt_jwks is not None and self.jwt_jwks.startswith("http://"):
            found.append("SLAWATCH_JWT_JWKS: keys fetched over plain http can be forged")
        if self.jwt_jwks is not None and self.jwt_audience is None:
            found.append(
                "SLAWATCH_JWT_AUDIENCE: not set, so a token the provider issued for any other "
                "application would be accepted"
            )
        if (self.kafka_security_protocol, self.kafka_sasl_mechanism) == ("SASL_PLAINTEXT", "PLAIN"):
            found.append("SLAWATCH_KAFKA_SECURITY_PROTOCOL: SASL PLAIN sends the password in clear")
        return found

    def refuse_development_values(self, more: Iterable[str] = ()) -> None:
        """Outside development mode, ``DevelopmentValuesError`` naming every setting left at a
        development value (those of ``development_values`` and ``more``)."""
        if self.environment == DEVELOPMENT:
            return
        found = [*self.development_values(), *more]
        if found:
            raise DevelopmentValuesError(
                "refusing to start with development values outside development mode "
                "(SLAWATCH_ENV=development is for make run and the tests); set:\n  "
                + "\n  ".join(found)
            )
