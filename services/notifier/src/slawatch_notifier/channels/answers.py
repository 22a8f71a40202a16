"""What the HTTP providers' adapters share: one bounded exchange, reading their answers.

``exchange`` sends one prepared request within ``timeout_s`` in all (connect,
upload, answer) and turns the network's faults into ``Retryable`` with a reason
naming the provider; it never raises for them. The readers pick a JSON object,
a numeric code (numbers sometimes arrive as strings) and a short excerpt of a
body for reasons.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from slawatch_notifier.channels.port import Retryable

BODY_IN_REASON = 200


async def exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    timeout_s: float,
    provider: str,
    *,
    secret_url: bool = False,
) -> httpx.Response | Retryable:
    """The provider's answer to ``request``, or why there was none.

    ``secret_url``: the URL is the credential (Slack), so a reason names the
    kind of failure only, never the error text that may quote it.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await client.send(request)
    except TimeoutError:
        return Retryable(f"no answer from {provider} within {timeout_s:g} s")
    except httpx.RequestError as exc:
        detail = "" if secret_url else f": {exc}"
        return Retryable(f"no answer from {provider}: {type(exc).__name__}{detail}".strip())


def json_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object in ``body``, if it holds one."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def int_or_none(value: object) -> int | None:
    """An integer code, also one sent as a string; None for anything else (or a bool)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def excerpt(body: bytes) -> str:
    """The start of ``body`` as text, for a reason."""
    return body[:BODY_IN_REASON].decode(errors="replace").strip()
