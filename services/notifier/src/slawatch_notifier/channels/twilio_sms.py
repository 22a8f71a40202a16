"""SMS through Twilio's Programmable Messaging REST API (Messages resource).

What is sent (Twilio docs: "Message resource" → "Create a Message",
"Twilio API requests" → authentication)::

    POST https://api.twilio.com/2010-04-01/Accounts/<AccountSid>/Messages.json
    Authorization: Basic base64(<AccountSid>:<AuthToken>)
    Content-Type: application/x-www-form-urlencoded

    To=<E.164>&From=<E.164 sender>&Body=<text>        (or MessagingServiceSid=MG… for From)

The body is the SMS text itself (Twilio sends free text; no templates), as one
line without control characters (``sanitize.one_line``). Twilio
documents no client idempotency key for creating messages (the
``I-Twilio-Idempotency-Token`` header is one Twilio puts on the webhooks it
sends), so a resend after a crash may reach the phone twice.

Classification (docs: "Create a Message" and the "Error and Warning Dictionary"):

- 200/201 → delivered (accepted for sending), with the message ``sid``;
- 408, 429 and 5xx → retryable; so are 400s with error 20429 (too many
  requests), 21611 (the sender's queue is full) and 14107 (send rate limit);
- other 4xx → permanent: 400 with 21211 (invalid ``To``), 21610 (recipient
  replied STOP), 21612/21614 (unroutable, not a mobile), 21606 (``From`` cannot
  send SMS), 21408 (region not enabled); 401 with 20003 (wrong AccountSid or
  AuthToken); 404 (no such account);
- connection errors and timeouts → retryable.

Every reason names the HTTP status, Twilio's error code and message.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

from slawatch_notifier.channels.answers import json_object
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.sanitize import one_line

API_VERSION = "2010-04-01"
DEFAULT_ENDPOINT = "https://api.twilio.com"
_BODY_IN_REASON = 200
_RETRYABLE_STATUSES = frozenset({408, 429})
_RETRYABLE_ERRORS = frozenset({20429, 21611, 14107})


@dataclass(frozen=True, slots=True)
class TwilioSmsSettings:
    """One Twilio account and its sender: a number (``from_number``) or a Messaging Service.

    ``endpoint`` is overridable so tests can aim at an emulator.
    """

    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str | None = None
    messaging_service_sid: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of from_number and messaging_service_sid")


# --- the request (pure) ----------------------------------------------------------


def basic_authorization(username: str, password: str) -> str:
    """The HTTP Basic ``Authorization`` value (RFC 7617): base64 of ``user:password`` in UTF-8."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def messages_url(settings: TwilioSmsSettings) -> str:
    base = settings.endpoint.rstrip("/")
    return f"{base}/{API_VERSION}/Accounts/{settings.account_sid}/Messages.json"


def request_form(outbound: Outbound, settings: TwilioSmsSettings) -> dict[str, str]:
    sender = (
        {"From": settings.from_number}
        if settings.from_number is not None
        else {"MessagingServiceSid": str(settings.messaging_service_sid)}
    )
    return {"To": outbound.address.strip(), **sender, "Body": one_line(outbound.content.text)}


def build_request(outbound: Outbound, settings: TwilioSmsSettings) -> httpx.Request:
    """The authenticated POST that creates the message, its timeout included."""
    headers = {
        "Authorization": basic_authorization(settings.account_sid, settings.auth_token),
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    return httpx.Request(
        "POST",
        messages_url(settings),
        headers=headers,
        content=urlencode(request_form(outbound, settings)).encode(),
        extensions={"timeout": httpx.Timeout(settings.timeout_s).as_dict()},
    )


# --- the answer (pure) -------------------------------------------------------------


def classify_response(status: int, body: bytes) -> Outcome:
    """The outcome an HTTP answer from "Create a Message" stands for."""
    answer = json_object(body) or {}
    if status in (200, 201):
        sid = answer.get("sid")
        return Delivered(str(sid) if sid is not None else None)
    code = answer.get("code")
    reason = _reason(status, code, answer, body)
    if status in _RETRYABLE_STATUSES or status >= 500 or code in _RETRYABLE_ERRORS:
        return Retryable(reason)
    return Permanent(reason)


def _reason(status: int, code: object, answer: dict[str, object], body: bytes) -> str:
    if code is None:
        excerpt = body[:_BODY_IN_REASON].decode(errors="replace").strip()
        return f"Twilio HTTP {status}: {excerpt}"
    message = answer.get("message") or answer.get("detail") or ""
    more = f" ({answer['more_info']})" if answer.get("more_info") else ""
    return f"Twilio HTTP {status} error {code}: {message}{more}"


# --- the adapter -----------------------------------------------------------------------


class TwilioSmsChannel:
    """Creates one Twilio message per ``send`` over a shared ``httpx.AsyncClient``.

    ``send`` never raises for network or provider faults and returns within
    ``settings.timeout_s`` per network phase.
    """

    def __init__(self, client: httpx.AsyncClient, settings: TwilioSmsSettings) -> None:
        self._client = client
        self._settings = settings

    async def send(self, outbound: Outbound) -> Outcome:
        try:
            response = await self._client.send(build_request(outbound, self._settings))
        except httpx.TransportError as exc:  # connect/read errors and timeouts
            return Retryable(f"Twilio unreachable: {type(exc).__name__}: {exc}")
        return classify_response(response.status_code, response.content)
