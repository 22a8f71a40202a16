"""Run an ASGI app (with its lifespan) on a free loopback port inside the test's loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from uvicorn.config import LifespanType


@asynccontextmanager
async def serving(app: Any, *, lifespan: LifespanType = "on") -> AsyncIterator[str]:
    """Yields the base URL once the app has started; shuts it down on exit.

    The socket is bound before uvicorn starts, so no other process can take
    the port in between. ``lifespan="off"`` serves the app without starting it.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan=lifespan))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                raise RuntimeError("the app did not start") from task.exception()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
