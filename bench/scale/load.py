"""The open-loop ingest load, in a process of its own.

``python -m bench.scale.load PORT RATE SECONDS FILLER`` sends single events to
``slawatch-ingest`` on ``PORT`` at ``RATE`` requests/s for ``SECONDS``, half new
tickets, half updates of the ``FILLER`` seeded filler tickets, and prints its
figures as JSON. Open loop: each request's latency counts from its scheduled
instant, so a stall shows instead of slowing the load down.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench.ingest import TOKEN
from bench.scale.figures import percentiles
from bench.scale.plan import SOURCE

CONNECTIONS = 64


def _request(n: int, filler: int) -> bytes:
    """Even n: a new ticket; odd n: an update of a filler ticket."""
    now = datetime.now(UTC).isoformat()
    if n % 2:
        data: dict[str, Any] = {"id": f"f{n * 7919 % filler}", "status": "in_progress",
                                "group": f"g{n % 7}"}  # fmt: skip
        event = {"event_id": f"{SOURCE}-load-{n}", "type": "ticket.updated", "data": data}
    else:
        data = {"id": f"n{n}", "priority": "P3", "service": "network", "status": "open"}
        event = {"event_id": f"{SOURCE}-load-{n}", "type": "ticket.created", "data": data}
    body = json.dumps({**event, "occurred_at": now, "source": SOURCE}).encode()
    head = (
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _status(reader: asyncio.StreamReader) -> int:
    """The status of the next response on the connection (its body read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def generate(port: int, rate: float, seconds: float, filler: int) -> dict[str, Any]:
    """Single events to ``POST /v1/events`` at ``rate`` per second over ``CONNECTIONS``
    kept-alive connections; a failed connection is counted and replaced."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    failures: Counter[str] = Counter()

    async def send(n: int, due: float) -> None:
        reader, writer = await idle.get()
        try:
            writer.write(_request(n, filler))
            status = await _status(reader)
            if status == 202:
                latencies.append(loop.time() - due)
            else:
                failures[str(status)] += 1
        except (OSError, asyncio.IncompleteReadError) as exc:
            failures[type(exc).__name__] += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            idle.put_nowait((reader, writer))

    start = loop.time()
    total = int(rate * seconds)
    tasks = []
    for n in range(total):
        if (delay := start + n / rate - loop.time()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(n, start + n / rate)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    latencies.sort()
    return {
        "rate": rate,
        "sent": total,
        "accepted": len(latencies),
        "failures": dict(failures),
        "achieved_per_s": round(len(latencies) / elapsed),
        "latency_ms": percentiles([round(1000 * x, 1) for x in latencies]),
    }


def main(argv: list[str]) -> int:
    port, rate, seconds, filler = argv
    print(json.dumps(asyncio.run(generate(int(port), float(rate), float(seconds), int(filler)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
