"""Slack incoming webhooks: one Block Kit message per send.

    POST https://hooks.slack.com/services/T…/B…/…
    {"text": "<subject>",
     "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "<subject>"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "<text>"}}]}

The webhook URL is the only credential, so it never appears in a repr or a
reason. ``text`` is the notification fallback Slack shows where blocks cannot
be rendered. Slack's limits are kept by clipping (with "…"): a header holds 150
characters, a section 3000; ``&``, ``<`` and ``>`` are escaped as mrkdwn
requires, so no text forms a link (``<url|text>``), a mention (``<@U…>``,
``<!here>``) or a date token, and control characters are dropped (the header
and the fallback are one line; the section keeps its line breaks). A plain
``@name`` is no mention: the payload sets neither ``link_names`` nor ``parse``.

A person or channel is reached through a named webhook: ``outbound.address`` is
a key of the ``hooks`` mapping.

Answers: HTTP 200 with the body ``ok`` → delivered (Slack gives no message id).
429 (rate limited: about one message a second per webhook, with a
``Retry-After`` header the reason quotes), 408 and 5xx, timeouts and
connection errors → retryable. Any other status is permanent, with Slack's
error string as the reason: 400 ``invalid_payload`` / ``no_text`` /
``invalid_blocks``, 403 ``action_prohibited`` / ``invalid_token``, 404
``no_service`` / ``channel_not_found``, 410 ``channel_is_archived``. A 2xx
with another body is retryable: nothing says the message arrived.

Sources: Slack developer documentation "Sending messages using incoming
webhooks" (docs.slack.dev/messaging/sending-messages-using-incoming-webhooks:
payload and error table), the changelog entry "Improving error conditions for
Incoming Webhooks" (api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks:
statuses per error string), "Rate limits" (docs.slack.dev/apis/web-api/rate-limits:
one message a second, HTTP 429 with Retry-After) and the Block Kit reference
for the header (150) and section (3000) text limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from slawatch_notifier.channels.answers import excerpt, exchange
from slawatch_notifier.channels.port import Delivered, Outbound, Outcome, Permanent, Retryable
from slawatch_notifier.sanitize import one_line, printable_lines
from slawatch_notifier.templates import Content

HEADER_MAX_CHARS = 150
SECTION_MAX_CHARS = 3000
_RETRYABLE_STATUSES = frozenset({408, 429})
_MRKDWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class SlackWebhook:
    """One incoming webhook; ``url`` is Slack's full URL (or an emulator's in tests)."""

    url: str = field(repr=False)
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if httpx.URL(self.url).scheme not in ("http", "https"):
            raise ValueError("a Slack webhook url must be an http(s) URL")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")


def mrkdwn(text: str, max_chars: int) -> str:
    """``text`` escaped for mrkdwn, clipped to ``max_chars`` (escapes included) with "…"."""
    text = printable_lines(text)
    escaped = "".join(_MRKDWN_ESCAPES.get(char, char) for char in text)
    if len(escaped) <= max_chars:
        return escaped
    pieces: list[str] = []
    used = 0
    for char in text:  # clip between escapes, never inside "&amp;"
        piece = _MRKDWN_ESCAPES.get(char, char)
        if used + len(piece) > max_chars - len(_ELLIPSIS):
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces) + _ELLIPSIS


def plain(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - len(_ELLIPSIS)] + _ELLIPSIS


def message(content: Content) -> dict[str, Any]:
    """``{"text", "blocks"}``: a header with the subject (if any), a section with the text."""
    subject = one_line(content.subject)
    blocks: list[dict[str, Any]] = []
    if subject:
        header = {"type": "plain_text", "text": plain(subject, HEADER_MAX_CHARS)}
        blocks.append({"type": "header", "text": header})
    section = {"type": "mrkdwn", "text": mrkdwn(content.text.rstrip(), SECTION_MAX_CHARS)}
    blocks.append({"type": "section", "text": section})
    fallback = mrkdwn(subject or content.text.rstrip(), SECTION_MAX_CHARS)
    return {"text": fallback, "blocks": blocks}


def build_request(outbound: Outbound, hook: SlackWebhook) -> httpx.Request:
    """The POST for ``outbound``; pure (Slack signs nothing, so no time is needed)."""
    return httpx.Request(
        "POST",
        hook.url,
        json=message(outbound.content),
        extensions={"timeout": httpx.Timeout(hook.timeout_s).as_dict()},
    )


def classify_response(status: int, body: bytes, retry_after: str | None = None) -> Outcome:
    """The outcome an HTTP answer from Slack stands for; the reason quotes Slack's error."""
    answer = excerpt(body)
    if 200 <= status < 300:
        if answer == "ok":
            return Delivered(None)
        return Retryable(f"Slack answered HTTP {status} with {answer!r} instead of 'ok'")
    reason = f"HTTP {status} from Slack: {answer}"
    if retry_after:
        reason += f" (Retry-After: {retry_after.strip()} s)"
    if status in _RETRYABLE_STATUSES or status >= 500:
        return Retryable(reason)
    return Permanent(reason)


class SlackChannel:
    """Posts to named webhooks with a shared client; each hook's timeout bounds its sends."""

    def __init__(self, client: httpx.AsyncClient, hooks: Mapping[str, SlackWebhook]) -> None:
        self._client = client
        self._hooks = dict(hooks)

    async def send(self, outbound: Outbound) -> Outcome:
        hook = self._hooks.get(outbound.address)
        if hook is None:
            return Permanent(f"no Slack webhook named {outbound.address!r} is configured")
        request = build_request(outbound, hook)
        response = await exchange(self._client, request, hook.timeout_s, "Slack", secret_url=True)
        if isinstance(response, Retryable):
            return response
        retry_after = response.headers.get("Retry-After")
        return classify_response(response.status_code, response.content, retry_after)
