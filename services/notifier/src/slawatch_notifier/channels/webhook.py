"""A generic signed JSON webhook: the contract any receiver can implement and verify.

Request (one per delivery attempt; a retry resends the same body under a new
timestamp and signature):

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <notification id>
    X-Slawatch-Timestamp: <unix seconds>
    X-Slawatch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body bytes)>

    {"notification_id": "jira:OPS-42:response:warning:75:li.wei:webhook",
     "ticket_source": "jira", "ticket_id": "OPS-42",
     "recipient_name": "Li Wei",            (or null)
     "subject": "…", "text": "…"}

The body is compact UTF-8 JSON (``json.dumps``: every string, event text
included, arrives exactly, quotes and control characters escaped). ``subject``
and ``text`` are plain text, not markup: a receiver that shows them in HTML,
markdown or a mail header escapes them for it. A receiver verifies the body
like this:

1. take the raw body bytes exactly as received (before any JSON parsing);
2. compute ``hex(HMAC-SHA256(key=secret, msg=timestamp_header + "." + body))``
   and compare it with the part after ``sha256=`` in constant time;
3. reject a timestamp more than 5 minutes from its own clock (a replayed
   request carries an old one);
4. treat a repeated ``Idempotency-Key`` as the same notification (a sender
   that crashed after the receiver answered sends it again). The key equals
   ``notification_id``; non-ASCII characters in it are percent-encoded (UTF-8)
   so the header stays ASCII.

Answers: any 2xx → delivered (a JSON ``{"id": …}`` answer becomes the provider
message id); 408, 429, 5xx, timeouts and connection errors → retryable; every
other status → permanent, the reason quoting the status and the body's start.

A receiver is reached by name: ``outbound.address`` is a key of the ``targets``
mapping.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from slawatch_notifier.channels.answers import excerpt, exchange
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock

TIMESTAMP_HEADER = "X-Slawatch-Timestamp"
SIGNATURE_HEADER = "X-Slawatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RECOMMENDED_TOLERANCE_S = 300
_RETRYABLE_STATUSES = frozenset({408, 429})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEADER_SAFE = "!#$&'()*+,-./:;=?@[]^_`{|}~"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One receiver and the secret it verifies signatures with."""

    url: str
    secret: str = field(repr=False)
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if httpx.URL(self.url).scheme not in ("http", "https"):
            raise ValueError(f"a webhook url must be an http(s) URL, not {self.url!r}")
        if not self.secret:
            raise ValueError("a webhook target needs a signing secret")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")


def request_body(outbound: Outbound) -> bytes:
    """The documented body, as the exact bytes that are signed and sent."""
    payload = {
        "notification_id": outbound.notification_id,
        "ticket_source": outbound.ticket_source,
        "ticket_id": outbound.ticket_id,
        "recipient_name": outbound.recipient_name,
        "subject": outbound.content.subject,
        "text": outbound.content.text,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 keyed by ``secret`` over ``b"<timestamp>." + body``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def idempotency_key(notification_id: str) -> str:
    """The notification id, percent-encoded where it is not plain ASCII."""
    return quote(notification_id, safe=_HEADER_SAFE)


def build_request(outbound: Outbound, target: WebhookTarget, now: datetime) -> httpx.Request:
    """The signed POST for ``outbound``; pure: ``now`` supplies the timestamp."""
    body = request_body(outbound)
    timestamp = (now - _EPOCH) // timedelta(seconds=1)
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: idempotency_key(outbound.notification_id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(target.secret, timestamp, body),
    }
    timeout = httpx.Timeout(target.timeout_s).as_dict()
    return httpx.Request(
        "POST", target.url, content=body, headers=headers, extensions={"timeout": timeout}
    )


def classify_response(status: int, body: bytes) -> Outcome:
    """2xx delivered; 408, 429 and 5xx retryable; anything else permanent."""
    if 200 <= status < 300:
        return Delivered(_answer_id(body))
    reason = f"HTTP {status} from webhook: {excerpt(body)}".strip()
    if status in _RETRYABLE_STATUSES or status >= 500:
        return Retryable(reason)
    return Permanent(reason)


class WebhookChannel:
    """Posts to named receivers with a shared client; each target's timeout bounds its sends."""

    def __init__(
        self, client: httpx.AsyncClient, targets: Mapping[str, WebhookTarget], clock: Clock
    ) -> None:
        self._client = client
        self._targets = dict(targets)
        self._clock = clock

    async def send(self, outbound: Outbound) -> Outcome:
        target = self._targets.get(outbound.address)
        if target is None:
            return Permanent(f"no webhook target named {outbound.address!r} is configured")
        request = build_request(outbound, target, self._clock.now())
        response = await exchange(self._client, request, target.timeout_s, "webhook")
        if isinstance(response, Retryable):
            return response
        return classify_response(response.status_code, response.content)


def _answer_id(body: bytes) -> str | None:
    try:
        answer: Any = json.loads(body)
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("id") is not None:
        return str(answer["id"])
    return None
