"""A development SMTP server that keeps every mail as an ``.eml`` file.

    python deploy/dev/mailcatcher.py --port 1025 --dir .data/mail

Each accepted message is written to ``<dir>/<UTC time>-<Message-ID>.eml`` (the
Message-ID reduced to safe characters) and announced on stdout as one line
with its recipients and subject. Nothing is relayed anywhere. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def eml_name(message_id: str | None, now: datetime) -> str:
    """``20261126T002615.123456Z-<safe message id>.eml``; a random id stands in for none."""
    safe = _UNSAFE.sub("_", (message_id or uuid.uuid4().hex).strip("<> "))[:120]
    return f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{safe}.eml"


class MailFolder:
    """The aiosmtpd handler: store, announce, accept."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content: bytes = envelope.content
        message = email.message_from_bytes(content, policy=email.policy.default)
        raw_id = email.message_from_bytes(content).get("Message-ID")  # unparsed, as sent
        path = self.folder / eml_name(raw_id, datetime.now(UTC))
        with self._lock:
            path.write_bytes(content)
        recipients = ", ".join(envelope.rcpt_tos)
        subject = str(message.get("Subject", "")).strip()
        print(f"mail to={recipients} subject={subject!r} file={path.name}")
        sys.stdout.flush()
        return "250 Message accepted"


def start(folder: Path, host: str = "127.0.0.1", port: int = 1025) -> Controller:
    """A started SMTP server writing into ``folder``; call ``stop()`` on it when done."""
    controller = Controller(MailFolder(folder), hostname=host, port=port)
    controller.start()
    return controller


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path(".data/mail"))
    args = parser.parse_args(argv)
    controller = start(args.dir, args.host, args.port)
    print(f"mailcatcher on {args.host}:{args.port}, writing to {args.dir}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
