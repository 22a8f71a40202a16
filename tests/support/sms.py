"""The development SMS provider (``deploy/dev/sms_sink.py``) on a port that stays its own
while the provider is stopped and started again."""

from __future__ import annotations

import threading

from deploy.dev.sms_sink import DEFAULT_TOKEN, Sms, SmsSink

from support.net import free_port


class SwitchableSmsSink:
    """``SmsSink`` on one fixed port that can be stopped and started again.

    Stopped, the port is closed: connections are refused. Each start runs a new
    ``SmsSink`` on the same port with the same token; ``received()`` spans every run.
    """

    def __init__(self, port: int | None = None, token: str = DEFAULT_TOKEN) -> None:
        self.port = port or free_port()
        self.token = token
        self._lock = threading.Lock()
        self._earlier: list[Sms] = []
        self._sink: SmsSink | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"

    @property
    def running(self) -> bool:
        return self._sink is not None

    def start(self) -> None:
        if self._sink is not None:
            return
        sink = SmsSink(port=self.port, token=self.token)
        sink.start()
        self._sink = sink

    def stop(self) -> None:
        if self._sink is None:
            return
        self._sink.stop()
        with self._lock:
            self._earlier.extend(self._sink.received())
            self._sink = None

    def received(self) -> list[Sms]:
        """Every accepted message of every run, in arrival order (repeats included)."""
        with self._lock:
            current = self._sink.received() if self._sink is not None else []
            return [*self._earlier, *current]
