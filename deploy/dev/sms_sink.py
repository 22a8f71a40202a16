"""A development SMS provider: accepts the notifier's JSON and keeps every message.

    python deploy/dev/sms_sink.py --port 8025 --out .data/sms.jsonl [--token dev-sms-token]

``POST /sms`` with ``Authorization: Bearer <token>`` and a JSON object
``{"to": str, "message": str, "idempotency_key": str (optional)}`` answers
``200 {"id": "sms-<n>"}`` and stores the message (one JSON line in ``--out``
and on stdout). A wrong token gets 401, a malformed body 400. ``GET /sms``
(same token) lists what was received.

Importable for tests: ``SmsSink`` starts on a free port in a thread, exposes
``received()`` and ``fail_next(n, status)`` to make the next ``n`` requests
answer ``status`` (503 for a flaky provider, 400 for a rejecting one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_TOKEN = "dev-sms-token"
MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Sms:
    id: str
    to: str
    message: str
    idempotency_key: str | None
    received_at: float


class MalformedError(ValueError):
    """The request body is not an SMS request."""


def parse_sms(body: bytes) -> tuple[str, str, str | None]:
    """``(to, message, idempotency_key)`` from a request body, or ``MalformedError``."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise MalformedError(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise MalformedError("the body must be a JSON object")
    to, message, key = payload.get("to"), payload.get("message"), payload.get("idempotency_key")
    if not isinstance(to, str) or not to.strip():
        raise MalformedError("'to' must be a non-empty string")
    if not isinstance(message, str) or not message:
        raise MalformedError("'message' must be a non-empty string")
    if key is not None and not isinstance(key, str):
        raise MalformedError("'idempotency_key' must be a string")
    return to, message, key


class SmsSink:
    """The provider: start, send to ``url``, read ``received()``, stop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        out: Path | None = None,
        echo: bool = False,
    ) -> None:
        self.token = token
        self._out = out
        self._echo = echo
        self._lock = threading.Lock()
        self._messages: list[Sms] = []
        self._failures: list[int] = []
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def received(self) -> list[Sms]:
        """Every accepted message so far, in arrival order (repeats included)."""
        with self._lock:
            return list(self._messages)

    def fail_next(self, count: int, status: int) -> None:
        """Answer the next ``count`` POSTs with ``status`` (after the token check)."""
        with self._lock:
            self._failures.extend([status] * count)

    def take_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def accept(self, to: str, message: str, key: str | None) -> Sms:
        with self._lock:
            sms = Sms(f"sms-{len(self._messages) + 1}", to, message, key, time.time())
            self._messages.append(sms)
            line = json.dumps(asdict(sms), ensure_ascii=False)
            if self._out is not None:
                with self._out.open("a", encoding="utf-8") as file:
                    file.write(line + "\n")
        if self._echo:
            print(f"sms {line}", flush=True)
        return sms


def _handler_for(sink: SmsSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not self._authorised():
                return
            if self.path.split("?")[0] != "/sms":
                self._answer(404, {"error": "not found"})
                return
            failure = sink.take_failure()
            if failure is not None:
                self._answer(failure, {"error": f"injected failure {failure}"})
                return
            self._accept()

        def do_GET(self) -> None:
            if self._authorised():
                self._answer(200, [asdict(sms) for sms in sink.received()])

        def _accept(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"error": "body too large"})
                return
            try:
                to, message, key = parse_sms(self.rfile.read(length))
            except MalformedError as exc:
                self._answer(400, {"error": str(exc)})
                return
            self._answer(200, {"id": sink.accept(to, message, key).id})

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {sink.token}":
                return True
            self._answer(401, {"error": "missing or wrong bearer token"})
            return False

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the sink prints messages itself; request lines are noise

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--out", type=Path, default=Path(".data/sms.jsonl"))
    parser.add_argument("--token", default=os.environ.get("SLAWATCH_SMS_TOKEN", DEFAULT_TOKEN))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sink = SmsSink(host=args.host, port=args.port, token=args.token, out=args.out, echo=True)
    sink.start()
    print(f"sms sink on http://{args.host}:{sink.port}/sms, writing to {args.out}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
