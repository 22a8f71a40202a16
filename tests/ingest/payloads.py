"""The reference webhook samples and test signers.

The samples are the project's reference payloads (``../shared/payloads``),
copied byte for byte into ``tests/ingest/samples`` with their provenance
(``samples/README.md``) so the suite does not depend on a folder outside the
repository; ``test_samples_are_the_reference_payloads`` checks the copies
against the originals wherever those are present. They are read byte for
byte and never written. The signers compute
each source's signature the way the source documents it, independently of
``slawatch_ingest.signatures``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).resolve().parent / "samples"
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "payloads"


def sample(name: str) -> bytes:
    """The bytes of ``PAYLOADS/name``."""
    return (PAYLOADS / name).read_bytes()


def sample_json(name: str) -> Any:
    return json.loads(sample(name))


def hub(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    """``X-Hub-Signature`` as Jira (sha256) and Zammad (sha1) send it."""
    return f"{algorithm}=" + hmac.new(secret.encode(), body, algorithm).hexdigest()


def zendesk(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Zendesk-Webhook-Signature``: base64 HMAC-SHA256 of timestamp + body."""
    mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def glpi(secret: str, body: bytes, timestamp: int) -> str:
    """``X-GLPI-signature``: hex HMAC-SHA256 of body + timestamp (GLPI 11)."""
    return hmac.new(secret.encode(), body + str(timestamp).encode(), hashlib.sha256).hexdigest()


def grafana(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """Grafana's HMAC: hex HMAC-SHA256 of the body, or of ``timestamp:body``."""
    signed = body if timestamp is None else f"{timestamp}:".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
