"""Is a webhook from the sender it claims? Each source's scheme, as the sender signs.

* ``hub`` (Jira, Zammad): ``X-Hub-Signature: <algorithm>=<hex HMAC of the body>``;
  Jira signs ``sha256`` (``sha1`` is accepted too), Zammad ``sha1``.
* ``zendesk``: ``X-Zendesk-Webhook-Signature`` is the base64 HMAC-SHA256 of
  ``X-Zendesk-Webhook-Signature-Timestamp`` (ISO 8601) followed by the body.
* ``glpi``: ``X-GLPI-signature`` is the hex HMAC-SHA256 of the body followed
  by ``X-GLPI-timestamp`` (Unix seconds).
* ``hmac`` (Grafana, ServiceNow, generic): a configurable header
  (Grafana's ``X-Grafana-Alerting-Signature``, else ``X-Slawatch-Signature``)
  holds the HMAC-SHA256, hex or base64, of the body — or of
  ``<timestamp>:<body>`` when a timestamp header is configured.

Besides its signature every source may accept bearer tokens and basic-auth
users (Alertmanager's ``http_config`` sends only those). A request must pass
one configured method, and fails if any credential it presents is wrong.
Signed timestamps older (or further ahead) than the replay window fail too.

``screen`` decides all the headers alone can, before the body is read
(nothing configured, nothing presented, a wrong token, an unreadable or stale
signed timestamp), and says whether a bearer token or basic-auth user proved
the request (``Screening.proven``); a presented signature is then checked
against the body (``verify_body``). Any header value, however long, garbled or out of range,
is a ``UnauthenticatedError`` at worst (401), never another exception.

Everything here is pure: ``now`` is passed in, comparisons use
``hmac.compare_digest``. Header names are looked up in lower case.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum

HUB_HEADER = "x-hub-signature"
ZENDESK_SIGNATURE = "x-zendesk-webhook-signature"
ZENDESK_TIMESTAMP = "x-zendesk-webhook-signature-timestamp"
GLPI_SIGNATURE = "x-glpi-signature"
GLPI_TIMESTAMP = "x-glpi-timestamp"
AUTHORIZATION = "authorization"


class Scheme(StrEnum):
    """How a kind of source signs its body."""

    HUB_SHA256 = "hub-sha256"  # Jira: sha256 (sha1 also accepted)
    HUB_SHA1 = "hub-sha1"  # Zammad
    ZENDESK = "zendesk"
    GLPI = "glpi"
    HMAC = "hmac"  # Grafana, ServiceNow, generic
    NONE = "none"  # Alertmanager: tokens or basic auth only


class Verdict(Enum):
    ABSENT = "absent"
    VALID = "valid"


class UnauthenticatedError(Exception):
    """The request is not proven to come from the source; the message says why (401)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one source accepts. Empty everywhere: nothing is accepted."""

    scheme: Scheme
    secret: bytes | None = None
    tokens: tuple[str, ...] = ()
    basic_auth: Mapping[str, str] = field(default_factory=dict)
    signature_header: str | None = None
    timestamp_header: str | None = None
    replay_window_s: float | None = 300.0

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.tokens or self.basic_auth)


def authenticate(
    credentials: Credentials, body: bytes, headers: Mapping[str, str], now: datetime
) -> None:
    """Return if the request passes one configured method; else ``UnauthenticatedError``.

    ``screen`` then, if a signature is presented, ``verify_body``. ``headers``
    must have lower-case names.
    """
    pending = screen(credentials, headers, now).pending
    if pending is not None:
        verify_body(pending, body)


BodyCheck = Callable[[bytes], None]
"""A presented signature whose headers passed: checks it against the body (``SignatureError``)."""


@dataclass(frozen=True, slots=True)
class Screening:
    """What the headers decided of a request they did not fail."""

    pending: BodyCheck | None
    """The check of a presented signature, still due against the body; ``None``: none came."""
    proven: bool
    """A bearer token or basic-auth user presented is right: the sender is known before a
    byte of the body is read (a signature presented besides must still match it)."""


def screen(credentials: Credentials, headers: Mapping[str, str], now: datetime) -> Screening:
    """Everything the headers alone decide, before the body is read; ``UnauthenticatedError``
    if they already fail the request.

    They fail it when the source has no credentials configured, when no
    configured credential is presented, when a presented bearer token or
    basic-auth user is wrong, and when a presented signature's header or
    timestamp is unreadable, missing or outside the replay window. Returns the
    check of a presented signature that is still due against the body, and
    whether a token or basic auth proved the request.
    """
    if not credentials.configured:
        raise UnauthenticatedError("no credentials are configured for this source")
    pending: BodyCheck | None = None
    verdicts: list[Verdict] = []
    try:
        if credentials.secret is not None and credentials.scheme is not Scheme.NONE:
            pending = read_signature(credentials, credentials.secret, headers, now)
        if credentials.tokens:
            verdicts.append(verify_bearer(headers.get(AUTHORIZATION), credentials.tokens))
        if credentials.basic_auth:
            verdicts.append(verify_basic(headers.get(AUTHORIZATION), credentials.basic_auth))
    except SignatureError as exc:
        raise UnauthenticatedError(str(exc)) from exc
    proven = Verdict.VALID in verdicts
    if pending is None and not proven:
        raise UnauthenticatedError(f"missing credentials: send {expected(credentials)}")
    return Screening(pending, proven)


def verify_body(pending: BodyCheck, body: bytes) -> None:
    """Check the signature ``screen`` left pending against the body (401 if wrong)."""
    try:
        pending(body)
    except SignatureError as exc:
        raise UnauthenticatedError(str(exc)) from exc


def expected(credentials: Credentials) -> str:
    """The credentials the source accepts, for error messages."""
    options = []
    if credentials.secret is not None and credentials.scheme is not Scheme.NONE:
        options.append(f"a signature in {signature_header(credentials)}")
    if credentials.tokens:
        options.append("a bearer token")
    if credentials.basic_auth:
        options.append("basic auth")
    return " or ".join(options)


class SignatureError(ValueError):
    """A credential was presented and is wrong, stale or unreadable."""


def signature_header(credentials: Credentials) -> str:
    """The header the source's signature arrives in."""
    if credentials.scheme in (Scheme.HUB_SHA1, Scheme.HUB_SHA256):
        return HUB_HEADER
    if credentials.scheme is Scheme.ZENDESK:
        return ZENDESK_SIGNATURE
    if credentials.scheme is Scheme.GLPI:
        return GLPI_SIGNATURE
    return (credentials.signature_header or "x-slawatch-signature").lower()


def read_signature(
    credentials: Credentials, secret: bytes, headers: Mapping[str, str], now: datetime
) -> BodyCheck | None:
    """The signature of ``credentials.scheme`` as its headers present it; ``None`` when its
    header is missing. ``SignatureError`` when a header is unreadable or the signed
    timestamp is missing or outside the replay window: all before the body is read."""
    window = credentials.replay_window_s
    scheme = credentials.scheme
    if scheme is Scheme.HUB_SHA1:
        return read_hub(headers.get(HUB_HEADER), secret, ("sha1",))
    if scheme is Scheme.HUB_SHA256:
        return read_hub(headers.get(HUB_HEADER), secret, ("sha256", "sha1"))
    if scheme is Scheme.ZENDESK:
        return read_zendesk(
            headers.get(ZENDESK_SIGNATURE), headers.get(ZENDESK_TIMESTAMP), secret, now, window
        )
    if scheme is Scheme.GLPI:
        return read_glpi(
            headers.get(GLPI_SIGNATURE), headers.get(GLPI_TIMESTAMP), secret, now, window
        )
    timestamp_name = credentials.timestamp_header
    return read_hmac(
        headers.get(signature_header(credentials)),
        secret,
        timestamp=headers.get(timestamp_name.lower()) if timestamp_name else None,
        timestamped=timestamp_name is not None,
        now=now,
        window_s=window,
    )


def read_hub(header: str | None, secret: bytes, algorithms: Sequence[str]) -> BodyCheck | None:
    """``X-Hub-Signature: <algorithm>=<hex HMAC of the body>`` (Jira, Zammad)."""
    if not header:
        return None
    algorithm, _, presented = header.strip().partition("=")
    algorithm = algorithm.lower()
    if algorithm not in algorithms or not presented:
        raise SignatureError(
            f"{HUB_HEADER} must read <algorithm>=<hex> with algorithm {' or '.join(algorithms)}"
        )
    digest, expected_hex = getattr(hashlib, algorithm), presented.lower()

    def check(body: bytes) -> None:
        _compare(expected_hex, hmac.new(secret, body, digest).hexdigest(), HUB_HEADER)

    return check


def read_zendesk(
    signature: str | None,
    timestamp: str | None,
    secret: bytes,
    now: datetime,
    window_s: float | None,
) -> BodyCheck | None:
    """Base64 HMAC-SHA256 of the timestamp header's text followed by the body."""
    if not signature:
        return None
    if not timestamp:
        raise SignatureError(f"{ZENDESK_TIMESTAMP} is missing")
    _check_fresh(_iso_instant(timestamp, ZENDESK_TIMESTAMP), now, window_s)
    signed, presented = _utf8(timestamp), signature.strip()

    def check(body: bytes) -> None:
        digest = hmac.new(secret, signed + body, hashlib.sha256).digest()
        _compare(presented, base64.b64encode(digest).decode(), ZENDESK_SIGNATURE)

    return check


def read_glpi(
    signature: str | None,
    timestamp: str | None,
    secret: bytes,
    now: datetime,
    window_s: float | None,
) -> BodyCheck | None:
    """Hex HMAC-SHA256 of the body followed by the timestamp (GLPI 11 ``Webhook::raise``)."""
    if not signature:
        return None
    if not timestamp:
        raise SignatureError(f"{GLPI_TIMESTAMP} is missing")
    _check_fresh(_epoch_instant(timestamp, GLPI_TIMESTAMP), now, window_s)
    signed, presented = _utf8(timestamp.strip()), signature.strip().lower()

    def check(body: bytes) -> None:
        digest = hmac.new(secret, body + signed, hashlib.sha256).hexdigest()
        _compare(presented, digest, GLPI_SIGNATURE)

    return check


def read_hmac(
    signature: str | None,
    secret: bytes,
    *,
    timestamp: str | None,
    timestamped: bool,
    now: datetime,
    window_s: float | None,
) -> BodyCheck | None:
    """HMAC-SHA256 of the body, or of ``<timestamp>:<body>`` when the source sends a timestamp.

    The digest may be hex (Grafana; ``sha256=`` prefix allowed) or base64
    (what ServiceNow's ``GlideCertificateEncryption.generateMac`` returns).
    """
    if not signature:
        return None
    prefix = b""
    if timestamped:
        if not timestamp:
            raise SignatureError("the signature's timestamp header is missing")
        _check_fresh(_epoch_instant(timestamp, "timestamp"), now, window_s)
        prefix = _utf8(timestamp.strip()) + b":"
    presented = _utf8(signature.strip().removeprefix("sha256="))

    def check(body: bytes) -> None:
        digest = hmac.new(secret, prefix + body, hashlib.sha256).digest()
        hex_ok = hmac.compare_digest(presented.lower(), digest.hex().encode())
        b64_ok = hmac.compare_digest(presented, base64.b64encode(digest))
        if not (hex_ok or b64_ok):
            raise SignatureError("the signature does not match the body")

    return check


def verify_bearer(authorization: str | None, tokens: Sequence[str]) -> Verdict:
    """``Authorization: Bearer <token>``; another scheme counts as absent."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return Verdict.ABSENT
    offered = _utf8(presented.strip())
    matches = [hmac.compare_digest(offered, _utf8(token)) for token in tokens]
    if any(matches):
        return Verdict.VALID
    raise SignatureError("the bearer token is not accepted")


def verify_basic(authorization: str | None, users: Mapping[str, str]) -> Verdict:
    """``Authorization: Basic base64(user:password)``; another scheme counts as absent."""
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return Verdict.ABSENT
    try:
        decoded = base64.b64decode(_utf8(encoded.strip()), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SignatureError("the basic credentials are not base64 of user:password") from exc
    user, _, password = decoded.partition(":")
    expected_password = users.get(user, "")
    password_ok = hmac.compare_digest(_utf8(password), _utf8(expected_password))
    if user in users and password_ok:
        return Verdict.VALID
    raise SignatureError("the basic-auth user or password is not accepted")


def _compare(presented: str, digest: str, header: str) -> None:
    if not hmac.compare_digest(_utf8(presented), digest.encode()):
        raise SignatureError(f"{header} does not match the body")


def _utf8(text: str) -> bytes:
    """``text`` as bytes for a comparison or a digest; any text encodes, lone surrogates
    (which no HTTP header decodes to) as replacement characters."""
    return text.encode("utf-8", "replace")


def _check_fresh(signed_at: datetime, now: datetime, window_s: float | None) -> None:
    if window_s is None:
        return
    age = (now - signed_at).total_seconds()
    if abs(age) > window_s:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise SignatureError(f"the signed timestamp is {when}; the replay window is {window_s:g} s")


def _iso_instant(text: str, header: str) -> datetime:
    """An ISO 8601 time; one without an offset is UTC. ``_check_fresh`` takes any offset."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise SignatureError(f"{header} is not an ISO 8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _epoch_instant(text: str, header: str) -> datetime:
    """Unix seconds as a datetime; any other text, however large, is a ``SignatureError``."""
    try:
        return datetime.fromtimestamp(int(text.strip()), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        # ValueError: not an integer, or past the year 9999; OverflowError: past
        # time_t; OSError (EOVERFLOW): past what the platform's gmtime converts.
        raise SignatureError(f"{header} is not a Unix time in seconds") from exc
