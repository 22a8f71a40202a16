"""SMS through one generic HTTP JSON provider (httpx).

    POST <sms_url>   Authorization: Bearer <token>
    {"to": "+86…", "message": "…", "idempotency_key": "<notification id>"}

2xx → delivered (the provider's id from the JSON ``id`` field, if any);
408, 429, 5xx, connection errors and timeouts → retryable; any other status →
permanent. The idempotency key is the notification id, so a provider that
honours it drops a resend after a crash. The message is sent as one line
without control characters (``sanitize.one_line``): nothing in a ticket's
title can break it into lines that read as another message.
"""

from __future__ import annotations

import json

import httpx

from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.sanitize import one_line

_RETRYABLE_STATUSES = frozenset({408, 429})
_BODY_IN_REASON = 200


def request_body(outbound: Outbound) -> dict[str, str]:
    return {
        "to": outbound.address,
        "message": one_line(outbound.content.text),
        "idempotency_key": outbound.notification_id,
    }


def classify_response(status: int, body: bytes) -> Outcome:
    """The outcome an HTTP answer from the provider stands for."""
    if 200 <= status < 300:
        return Delivered(provider_id(body))
    reason = f"HTTP {status} from SMS provider: {body[:_BODY_IN_REASON].decode(errors='replace')}"
    if status in _RETRYABLE_STATUSES or status >= 500:
        return Retryable(reason.strip())
    return Permanent(reason.strip())


def provider_id(body: bytes) -> str | None:
    """The ``id`` of a JSON object answer, if there is one."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("id") is not None:
        return str(answer["id"])
    return None


class SmsChannel:
    """Posts to the provider with a shared client whose timeout bounds every send."""

    def __init__(self, client: httpx.AsyncClient, url: str, token: str) -> None:
        self._client = client
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"}

    async def send(self, outbound: Outbound) -> Outcome:
        try:
            response = await self._client.post(
                self._url, json=request_body(outbound), headers=self._headers
            )
        except httpx.TransportError as exc:  # connect/read errors and timeouts
            return Retryable(f"SMS provider unreachable: {type(exc).__name__}: {exc}")
        return classify_response(response.status_code, response.content)
