"""Signed, expiring acknowledgement links. Pure; ``now`` comes in.

    <public_url>/v1/acks/<token>
    token = base64url(payload) "." base64url(HMAC-SHA256(secret, base64url(payload)))
    payload = {"c": clock_id, "y": cycle, "r": recipient, "e": expiry (Unix seconds)}
            | {"d": digest_id, "r": recipient, "e": expiry}

Base64url without padding; the short payload keys keep the link short enough
for an SMS. ``verify`` checks the signature (constant time) before it reads
the payload, then the expiry: ``BadSignatureError`` (403), ``ExpiredLinkError``
(410), ``MalformedTokenError`` (422). A token is a bearer credential until it
expires, for one escalation (``AckClaim``) or for the escalations of the
notifications folded into one digest (``DigestClaim``, the link of a digest);
it acknowledges nothing else. So no log keeps one: ``redact`` takes the token
out of every link path in a line (the access log's, ``main.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import quote

_T = TypeVar("_T")

DEV_SECRET = "slawatch-dev-ack-secret"
"""Used when ``SLAWATCH_ACK_SECRET`` is unset; anyone who reads this can forge links."""

ACK_PATH = "/v1/acks"
REDACTED = "<token>"

_LINK_PATH = re.compile(re.escape(f"{ACK_PATH}/") + r"[^\s\"'<>]+", re.IGNORECASE)


class LinkError(ValueError):
    """An acknowledgement token that cannot be honoured."""


class MalformedTokenError(LinkError):
    pass


class BadSignatureError(LinkError):
    pass


class ExpiredLinkError(LinkError):
    pass


@dataclass(frozen=True, slots=True)
class AckClaim:
    """What a valid token says: acknowledge this clock cycle, on behalf of ``recipient``."""

    clock_id: str
    cycle: int
    recipient: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DigestClaim:
    """What a digest's token says: acknowledge every escalation folded into ``digest_id``."""

    digest_id: str
    recipient: str
    expires_at: datetime


def sign(claim: AckClaim | DigestClaim, secret: bytes) -> str:
    """The token for ``claim``."""
    payload: dict[str, str | int]
    if isinstance(claim, DigestClaim):
        payload = {"d": claim.digest_id}
    else:
        payload = {"c": claim.clock_id, "y": claim.cycle}
    payload |= {"r": claim.recipient, "e": int(claim.expires_at.timestamp())}
    body = _encode(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{body}.{_encode(_mac(body, secret))}"


def verify(token: str, secret: bytes, now: datetime) -> AckClaim | DigestClaim:
    """The claim of a genuine, unexpired token; a ``LinkError`` subclass otherwise."""
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature or not token.isascii():
        raise MalformedTokenError("a token is <payload>.<signature>")
    try:
        given = _decode(signature)
    except (binascii.Error, ValueError) as exc:
        raise MalformedTokenError("the signature is not base64url") from exc
    if not hmac.compare_digest(given, _mac(body, secret)):
        raise BadSignatureError("the signature does not match")
    claim = _claim(body)
    if now >= claim.expires_at:
        raise ExpiredLinkError(f"the link expired at {claim.expires_at.isoformat()}")
    return claim


@dataclass(frozen=True, slots=True)
class AckLinks:
    """Makes the acknowledgement URL of each notification."""

    secret: bytes
    base_url: str
    ttl: timedelta

    def url(self, clock_id: str, cycle: int, recipient: str, now: datetime) -> str:
        return self._url(AckClaim(clock_id, cycle, recipient, now + self.ttl))

    def digest_url(self, digest_id: str, recipient: str, now: datetime) -> str:
        """The link of a digest: it acknowledges every escalation folded into it."""
        return self._url(DigestClaim(digest_id, recipient, now + self.ttl))

    def _url(self, claim: AckClaim | DigestClaim) -> str:
        return f"{self.base_url.rstrip('/')}{ACK_PATH}/{quote(sign(claim, self.secret))}"


def redact(text: str) -> str:
    """``text`` with whatever follows ``/v1/acks/`` in a path (the token, and any query)
    replaced by ``<token>``."""
    return _LINK_PATH.sub(f"{ACK_PATH}/{REDACTED}", text)


def _claim(body: str) -> AckClaim | DigestClaim:
    try:
        payload = json.loads(_decode(body))
        recipient = _typed(payload["r"], str)
        expires_at = datetime.fromtimestamp(_typed(payload["e"], int), UTC)
        claim: AckClaim | DigestClaim
        if "d" in payload:
            claim = DigestClaim(_typed(payload["d"], str), recipient, expires_at)
        else:
            clock_id, cycle = _typed(payload["c"], str), _typed(payload["y"], int)
            claim = AckClaim(clock_id, cycle, recipient, expires_at)
    except (binascii.Error, ValueError, KeyError, TypeError, OverflowError) as exc:
        raise MalformedTokenError(f"the payload is not a claim: {exc}") from exc
    return claim


def _typed(value: object, kind: type[_T]) -> _T:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not {kind.__name__}")
    return value


def _mac(body: str, secret: bytes) -> bytes:
    return hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest()


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
