"""The development servers in deploy/dev that `make run` and end-to-end tests use."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from deploy.dev import mailcatcher
from deploy.dev.sms_sink import SmsSink

from support.net import free_port


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmsSink]:
    server = SmsSink(token="secret", out=tmp_path / "sms.jsonl")
    server.start()
    yield server
    server.stop()


def test_sms_sink_stores_accepted_messages(sink: SmsSink, tmp_path: Path) -> None:
    auth = {"Authorization": "Bearer secret"}
    body = {"to": "+8613800000002", "message": "hi", "idempotency_key": "k1"}
    answer = httpx.post(sink.url, json=body, headers=auth)
    assert (answer.status_code, answer.json()) == (200, {"id": "sms-1"})
    line = json.loads((tmp_path / "sms.jsonl").read_text(encoding="utf-8"))
    assert (line["to"], line["message"], line["idempotency_key"]) == ("+8613800000002", "hi", "k1")
    listed = httpx.get(sink.url, headers=auth).json()
    assert [item["id"] for item in listed] == ["sms-1"]


@pytest.mark.parametrize(
    "body", [b"not json", b"[1]", b'{"to": "", "message": "x"}', b'{"to": "+1"}']
)
def test_sms_sink_rejects_malformed_bodies(sink: SmsSink, body: bytes) -> None:
    answer = httpx.post(sink.url, content=body, headers={"Authorization": "Bearer secret"})
    assert answer.status_code == 400
    assert sink.received() == []


def test_sms_sink_checks_the_token_and_injects_failures(sink: SmsSink) -> None:
    body = {"to": "+1", "message": "x"}
    assert httpx.post(sink.url, json=body).status_code == 401
    sink.fail_next(2, 503)
    auth = {"Authorization": "Bearer secret"}
    statuses = [httpx.post(sink.url, json=body, headers=auth).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert len(sink.received()) == 1


@pytest.mark.smtp
async def test_mailcatcher_writes_one_eml_per_mail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    controller = mailcatcher.start(tmp_path / "mail", port=port)
    try:
        message = EmailMessage()
        message["From"] = "slawatch@localhost"
        message["To"] = "li.wei@example.com"
        message["Subject"] = "SLA warning"
        message["Message-ID"] = "<abc.def+1@localhost>"
        message.set_content("body")
        await aiosmtplib.send(message, hostname="127.0.0.1", port=port)
    finally:
        controller.stop()
    (path,) = (tmp_path / "mail").glob("*.eml")
    assert path.name.endswith("-abc.def_1_localhost.eml")
    assert email.message_from_bytes(path.read_bytes())["Subject"] == "SLA warning"
    assert "to=li.wei@example.com subject='SLA warning'" in capsys.readouterr().out
