"""Contract compliance through the running system: ingest → broker → engine → report, Prometheus.

1. The hand-worked month (``tests/engine/compliance``) posted through ingest
   and consumed by the running engine gives an online report equal to the
   offline ``slawatch-engine report`` of the same events.
2. A real Prometheus scrapes the engine while tickets of contract ``live``
   are answered and resolved; the shipped recording rules then give the
   report's on-time resolution rate and mean response time.
3. An alert that pushes contract ``watch``'s group below its 99.999 % target
   overspends the group's error budget at once: the engine emits an
   availability breach, and the notifier escalates it by the contract's chain.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy.dev.sms_sink import SmsSink

from e2e.system import ADMIN_TOKEN, System, services, services_env, wait_until
from slawatch_common.topics import Topics
from slawatch_engine.compliance import build
from slawatch_engine.periods import period_of
from slawatch_engine.policy import load_policies
from slawatch_engine.reporting import OfflineLedger, read_events
from support.prometheus import Prometheus, one_value
from support.smtp import SmtpSink

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

MONTH = Path(__file__).parents[1] / "engine" / "compliance"
AS_OF = "2026-12-01T09:30:00+08:00"
EXTRA = """
policies:
  - name: live
    match: {service: [live]}
    calendar: always
    targets:
      P1: {response: 10m, resolution: 30m}
contracts:
  live:
    customer: Live Co
    provider: Example Ops Co
    policies: [live]
  watch:
    customer: Watch Co
    provider: Example Ops Co
    policies: [live]
    escalation: standard
    availability:
      billing: {services: [billing], target: 99.999}
notifier:
  people:
    oncall: {name: On-call, email: oncall@example.com, phone: "+8613800000002"}
    supervisor: {name: Supervisor, email: supervisor@example.com}
  escalations:
    standard:
      - on: breach
        notify: [{to: oncall, via: sms}, {to: supervisor, via: email}]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The month's contract, plus policy ``live`` (first), contracts ``live`` and ``watch``
    and the notifier's part."""
    merged: dict[str, Any] = yaml.safe_load((MONTH / "contract.yaml").read_text())
    extra = yaml.safe_load(EXTRA)
    merged["policies"] = extra["policies"] + merged["policies"]
    merged["contracts"].update(extra["contracts"])
    merged["notifier"] = extra["notifier"]
    path = tmp_path / "slawatch.yaml"
    path.write_text(yaml.safe_dump(merged))
    return path


@pytest.fixture
def system(
    tmp_path: Path,
    config: Path,
    kafka_bootstrap: str,
    topics: Topics,
    pg_url: str,
    smtp_sink: SmtpSink,
    sms_sink: SmsSink,
) -> Iterator[System]:
    env = services_env(config, kafka_bootstrap, topics, pg_url, smtp_sink.port, sms_sink)
    with services(env, tmp_path) as (ingest, engine, notifier):
        yield System(ingest, engine, notifier, smtp_sink, sms_sink)


def report(system: System, contract: str, **query: str) -> dict[str, Any]:
    response = httpx.get(
        f"{system.engine.url}/v1/reports/{contract}",
        params=query,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def post_all(system: System, events: list[dict[str, Any]]) -> None:
    for first in range(0, len(events), 20):
        answer = system.post(*events[first : first + 20])
        assert answer.status_code == 202, answer.text


def test_online_report_prometheus_and_an_availability_breach(
    system: System, config: Path, tmp_path: Path
) -> None:
    book = load_policies(config)
    lines = (MONTH / "month.ndjson").read_text().splitlines()
    month = sorted(read_events(lines), key=lambda event: event.occurred_at)
    as_of = datetime.fromisoformat(AS_OF)
    ledger = OfflineLedger(book)
    ledger.run(month, as_of)
    acme = book.contracts["acme"]
    november = period_of("2026-11", acme.zone)
    facts = ledger.facts(as_of)
    offline = build("acme", acme, november, as_of, facts, ledger.alerts(), book.calendars).as_json()

    async def scenario() -> None:
        engine = system.engine.url.removeprefix("http://")
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        async with Prometheus([engine], workdir) as prometheus:
            # every series is scraped at zero before anything counts
            await prometheus.wait_for(
                'slawatch_compliance_clocks_completed_total{contract="live"}', bool
            )
            # 1. the month through ingest, the broker and the engine
            post_all(system, [event.model_dump(mode="json") for event in month])
            online: dict[str, Any] = {}

            def caught_up() -> bool:
                online.update(report(system, "acme", period="2026-11", as_of=AS_OF))
                return online == offline

            await asyncio.to_thread(wait_until, caught_up, 60, "the online report")
            assert online["indicators"]["on_time_resolution_rate"]["value"] == 90.0

            # 2. tickets of contract "live", answered in 1..10 minutes; L10 resolved late
            now = datetime.now(UTC).replace(microsecond=0)
            t0 = now - timedelta(minutes=50)
            events = []
            for n in range(1, 11):
                events += [
                    _ticket("created", f"L{n}", t0, priority="P1", service="live"),
                    _ticket("responded", f"L{n}", t0 + timedelta(minutes=n)),
                    _ticket("resolved", f"L{n}", t0 + timedelta(minutes=40 if n == 10 else 20)),
                ]
            post_all(system, sorted(events, key=lambda e: e["occurred_at"]))
            window = {
                "from": (t0 - timedelta(minutes=1)).isoformat(),
                "to": (now + timedelta(minutes=1)).isoformat(),
                "as_of": now.isoformat(),
            }
            live: dict[str, Any] = {}

            def resolved() -> bool:
                live.update(report(system, "live", **window))
                # stopped, not merely judged: an open clock past its deadline is known too
                counts = live["counts"]["resolution"]
                return bool(counts["met"] + counts["breached"] == 10)

            await asyncio.to_thread(wait_until, resolved, 30, "the live tickets resolved")
            on_time = live["indicators"]["on_time_resolution_rate"]["value"]
            mean = live["indicators"]["mean_response_time_minutes"]["value"]
            assert (on_time, mean) == (90.0, 5.5)
            await prometheus.wait_for(
                'contract:slawatch_on_time_resolution:ratio_rate30d{contract="live"}',
                one_value(on_time / 100),
            )
            await prometheus.wait_for(
                'contract:slawatch_response_business_seconds:mean30d{contract="live"}',
                one_value(mean * 60),
            )

        # 3. billing down for two minutes: 99.999 % of a month allows about 26 s
        started = datetime.now(UTC) - timedelta(minutes=2)
        alert = {
            "event_id": f"billing-{uuid.uuid4().hex[:8]}",
            "type": "monitor.alert_firing",
            "occurred_at": started.isoformat(),
            "source": "alertmanager",
            "data": {
                "service": "billing",
                "name": "BillingDown",
                "fingerprint": "billing-1",
                "starts_at": started.isoformat(),
            },
        }
        assert system.post(alert).status_code == 202
        await asyncio.to_thread(
            wait_until, lambda: system.sms_about("watch/billing"), 30, "the breach SMS"
        )
        await asyncio.to_thread(
            wait_until, lambda: system.mails("watch/billing"), 10, "the breach mail"
        )

    asyncio.run(scenario())
    sms = system.sms_about("watch/billing")
    assert len(sms) == 1
    assert sms[0].to == "+8613800000002"
    (mail,) = system.mails("watch/billing")
    assert mail[1] == ["supervisor@example.com"]


def _ticket(kind: str, ticket: str, at: datetime, **data: str) -> dict[str, Any]:
    return {
        "event_id": f"live:{ticket}:{kind}",
        "type": f"ticket.{kind}",
        "occurred_at": at.isoformat(),
        "source": "live",
        "data": {"id": ticket, **data},
    }
