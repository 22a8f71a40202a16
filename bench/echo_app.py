"""The baseline for ingest: a bare ASGI app under the same uvicorn, answering 202.

It reads the whole body and answers a small JSON, doing nothing else: what
ingest's single-event figure is compared with (``make bench``).
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"accepted":1}'})
