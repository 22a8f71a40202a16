"""Run an ASGI app (with its lifespan) on a free loopback port, in a thread of its own.

For tests whose body is synchronous (schemathesis, anything driving a client
that blocks): the app's event loop runs beside them instead of under them.
Tests that are coroutines use ``support.serving`` instead.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serving_in_thread(app: Any, *, within: float = 30.0) -> Iterator[str]:
    """Yields the base URL once the app has started; shuts it down (lifespan included) on exit.

    Raises ``RuntimeError`` if the app does not start within ``within`` seconds.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + within
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=within)
        sock.close()
