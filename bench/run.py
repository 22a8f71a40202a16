"""slawatch benchmarks: ``make bench`` writes bench/results/latest.json and docs/BENCHMARKS.md.

Each part beside its same-run baseline: ``ingest`` (bench/ingest.py: wrk and
vegeta against ingest and a bare uvicorn app), ``engine`` (bench/engine.py:
durable intake against raw aiokafka consumption; bench/scale: a million open
clocks — memory, firing lateness, restart and backlog), ``notifier``
(bench/notifier.py: mails against bare aiosmtplib), and, in-process:
- ``calendar``: deadlines per second on a one-year calendar with holidays,
  beside the ``businesstimedelta`` package on the same inputs in the same run
  (``deadlines_per_s``, ``baseline_businesstimedelta_per_s``), how many of
  100 deadlines agree, and the cost of one one-year target;
- ``clock.replays_per_s``: a clock with a pause replayed and assessed (the
  per-clock work of applying an event or firing a stage), cn-office calendar;
- ``report`` (bench/report.py): a month's compliance report from the stored
  ledger (100,000 tickets, 10,000 alerts) beside one SQL aggregate of the same
  rows, same run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import businesstimedelta
import chinese_calendar
import pytz

from bench.engine import bench_engine
from bench.ingest import bench_ingest
from bench.notifier import bench_notifier
from bench.report import bench_report
from bench.scale import bench_engine_scale
from slawatch_common.events import Metric
from slawatch_engine.clock import Clock, Entry, assess, replay
from slawatch_engine.policy import CalendarConfig, load_policies

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [900, 3600, 4 * 3600, 8 * 3600, 37_800 * 5]


# The services the benchmarks start run with the development tokens and keys.
os.environ.setdefault("SLAWATCH_ENV", "development")


def best_rate(work: Any, n: int, repeats: int = 5) -> float:
    """Operations per second of the best of ``repeats`` runs of ``n`` operations."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work(n)
        best = min(best, time.perf_counter() - started)
    return n / best


def bench_calendar() -> dict[str, Any]:
    """slawatch and ``businesstimedelta`` computing the same deadlines, same run.

    The calendar: Mon–Fri 08:00–18:30 in Asia/Shanghai with China's 2026
    statutory holidays that fall on weekdays as a plain holiday list (no
    make-up days: ``businesstimedelta`` cannot express them). Targets run
    from 15 minutes to a year of working time; starts spread over 2026.
    """
    statutory = [d for d in chinese_calendar.holidays if d.year == 2026 and d.weekday() < 5]
    # New Year's Days ahead too: businesstimedelta fails when no holiday follows within 5 years
    holidays = sorted({*statutory, *(date(year, 1, 1) for year in range(2027, 2036))})
    calendar = CalendarConfig.model_validate(
        {
            "timezone": "Asia/Shanghai",
            "weekly": {day: [["08:00", "18:30"]] for day in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": [d.isoformat() for d in holidays],
        }
    ).build("bench")
    zone = pytz.timezone("Asia/Shanghai")
    workday = businesstimedelta.WorkDayRule(
        start_time=dt_time(8), end_time=dt_time(18, 30), working_days=[0, 1, 2, 3, 4], tz=zone
    )
    rules = businesstimedelta.Rules([workday, businesstimedelta.HolidayRule(holidays, tz=zone)])
    year = 250 * 37_800
    targets = [900, 4 * 3600, 37_800, 5 * 37_800, year]
    base = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)
    cases = [(base + timedelta(hours=7 * i), targets[i % len(targets)]) for i in range(400)]
    deltas = {t: businesstimedelta.BusinessTimeDelta(rules, seconds=t) for t in targets}

    def ours(n: int) -> None:
        for i in range(n):
            start, target = cases[i % len(cases)]
            calendar.add(start, target)

    def theirs(n: int) -> None:
        for i in range(n):
            start, target = cases[i % len(cases)]
            _ = start + deltas[target]

    def one_year(n: int) -> None:
        for _ in range(n):
            calendar.add(base, year)

    agree = sum(calendar.add(s, t) == s + deltas[t] for s, t in cases[:100])
    return {
        "deadlines_per_s": round(best_rate(ours, 20_000)),
        "baseline_businesstimedelta_per_s": round(best_rate(theirs, 400, repeats=3)),
        "same_deadline_of_100": agree,
        "one_year_target_us": round(
            1e6 / best_rate(lambda n: [calendar.add(base, year) for _ in range(n)], 2000)
        ),
    }


def bench_replay() -> dict[str, Any]:
    calendar = load_policies(ROOT / "deploy/config/slawatch.yaml").calendar("cn-office")
    t0 = datetime(2026, 11, 23, 1, tzinfo=UTC)
    clock = Clock(
        id="bench:1:resolution",
        ticket_key="bench:1",
        partition=0,
        metric=Metric.RESOLUTION,
        policy="p",
        escalation=None,
        calendar="cn-office",
        stages=("warning:50", "warning:75", "warning:900s-before"),
        timeline=(
            Entry(t0, "start", target=8 * 3600),
            Entry(t0 + timedelta(hours=2), "pause"),
            Entry(t0 + timedelta(hours=5), "resume"),
        ),
    )
    now = t0 + timedelta(hours=6)

    def work(n: int) -> None:
        for _ in range(n):
            assess(clock, replay(clock, calendar), now)

    return {"replays_per_s": round(best_rate(work, 20_000))}


PARTS = ("ingest", "engine", "notifier", "calendar", "clock", "report")


def _engine() -> dict[str, Any]:
    engine = bench_engine()
    scale = bench_engine_scale()
    engine["scale_load"] = scale.pop("load")
    engine.update(scale)
    return engine


def main(argv: list[str] | None = None) -> int:
    """Every part (``make bench``), or only the parts named, whose figures then replace
    theirs in the last results: ``python -m bench.run report``."""
    wanted = list(sys.argv[1:] if argv is None else argv) or list(PARTS)
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        print(f"unknown parts {unknown}; the parts are {', '.join(PARTS)}", file=sys.stderr)
        return 2
    runs = {
        "ingest": bench_ingest,
        "engine": _engine,
        "notifier": bench_notifier,
        "calendar": bench_calendar,
        "clock": bench_replay,
        "report": bench_report,
    }
    out = ROOT / "bench/results/latest.json"
    results: dict[str, Any] = json.loads(out.read_text()) if len(wanted) < len(PARTS) else {}
    for part in set(PARTS) - set(wanted):  # kept from the last run, measured then
        results[part].setdefault("measured_at", results["generated_at"])
    for part in wanted:
        results[part] = {
            **runs[part](),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    results["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"] = {"python": sys.version.split()[0], "platform": platform.platform()}
    out.write_text(json.dumps(results, indent=2) + "\n")
    (ROOT / "docs/BENCHMARKS.md").write_text(render(results))
    print(json.dumps(results, indent=2))
    return 0


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _at_most(value: float | None, bound: float) -> str:
    return _verdict(value is not None and value <= bound)


def _later(*seconds: float | None) -> float | None:
    """The later of the figures, None if one is missing (a record left in the outbox by
    the killed engine may go out before the new engine fires anything)."""
    return None if None in seconds else max(s for s in seconds if s is not None)


def _at_least(value: float | None, bound: float) -> str:
    return _verdict(value is not None and value >= bound)


def render(results: dict[str, Any]) -> str:
    cal = results["calendar"]
    baseline = cal["baseline_businesstimedelta_per_s"]
    ing = results["ingest"]
    eng = results["engine"]
    restart = _later(eng["restart_first_emission_s"], eng["restart_first_fired_s"])
    late = eng["lateness_ms"]
    mail = results["notifier"]
    report = results["report"]
    rows = [
        ("ingest, single events, validated, broker-acked 202 (req/s)", f"{ing['rps']:,}", ""),
        (
            "bare uvicorn echo app, same load, same run (req/s)",
            f"{ing['baseline_bare_uvicorn_rps']:,}",
            "",
        ),
        (
            "ratio ingest / bare uvicorn",
            str(ing["ratio_to_baseline"]),
            f"≥ 0.35: {_verdict(ing['ratio_to_baseline'] >= 0.35)}",
        ),
        (
            f"ingest p50 / p99 / max at half the max rate ({ing['half_rate']:,} req/s, constant)",
            f"{ing['p50_ms']} / {ing['p99_ms']} / {ing['max_ms']} ms",
            f"p99 ≤ 15 ms: {_verdict(ing['p99_ms'] <= 15)}",
        ),
        ("bare uvicorn p99, same rate", f"{ing['baseline_p99_ms']} ms", ""),
        (
            "ingest, batch endpoint (events/s)",
            f"{ing['batch_events_per_s']:,}",
            f"≥ 50,000: {_verdict(ing['batch_events_per_s'] >= 50_000)}",
        ),
        (
            "engine, events applied with durable state (events/s)",
            f"{eng['events_per_s']:,}",
            f"≥ 20,000: {_verdict(eng['events_per_s'] >= 20_000)}",
        ),
        (
            "raw aiokafka consumption, same topic, same run",
            f"{eng['baseline_raw_consume_per_s']:,}",
            "",
        ),
        (
            "ratio engine / raw consumption",
            str(eng["ratio_to_baseline"]),
            f"≥ 0.15: {_verdict(eng['ratio_to_baseline'] >= 0.15)}",
        ),
        ("open clocks held by one engine", f"{eng['open_clocks']:,}", "1,000,000"),
        (
            "RSS per open clock",
            f"{eng['rss_bytes_per_clock']} bytes",
            f"≤ 600: {_at_most(eng['rss_bytes_per_clock'], 600)}",
        ),
        (
            "firing lateness p50 / p99 / p99.9 / max",
            f"{late['p50']} / {late['p99']} / {late['p999']} / {late['max']} ms",
            "≤ 5 / 50 / 250 / 1000 ms: "
            + _verdict(
                late["p50"] <= 5
                and late["p99"] <= 50
                and late["p999"] <= 250
                and late["max"] <= 1000
            ),
        ),
        ("emitted before their instant", str(eng["early"]), f"0: {_verdict(eng['early'] == 0)}"),
        (
            "SIGKILL → first correct emission: any record / a stage the new engine fired",
            f"{eng['restart_first_emission_s']} s / {eng['restart_first_fired_s']} s",
            f"≤ 10 s: {_at_most(restart, 10)}",
        ),
        (
            "overdue backlog drained (events/s)",
            f"{eng['backlog_drain_per_s'] or 0:,}",
            f"≥ 20,000: {_at_least(eng['backlog_drain_per_s'], 20_000)}",
        ),
        ("notifier, mails sent and recorded (per s)", f"{mail['emails_per_s']:,}", ""),
        (
            "bare aiosmtplib, same messages, same sink, same run",
            f"{mail['baseline_bare_smtp_per_s']:,}",
            "",
        ),
        (
            "ratio notifier / bare aiosmtplib",
            str(mail["ratio_to_baseline"]),
            f"≥ 0.7: {_verdict(mail['ratio_to_baseline'] >= 0.7)}",
        ),
        (
            "deadlines/s, 1-year calendar with holidays, 15 min to 1 year",
            f"{cal['deadlines_per_s']:,}",
            "",
        ),
        ("same inputs, `businesstimedelta` (baseline, same run)", f"{baseline:,}", ""),
        ("ratio slawatch / baseline", f"{cal['deadlines_per_s'] / baseline:.0f}×", ""),
        ("deadlines equal to the baseline's (of 100)", str(cal["same_deadline_of_100"]), ""),
        ("one deadline with a one-year target", f"{cal['one_year_target_us']} µs", ""),
        ("clock replays + assessments/s", f"{results['clock']['replays_per_s']:,}", ""),
        (
            "compliance report of a month, summary (s)",
            f"{report['seconds']}",
            "",
        ),
        (
            "one SQL aggregate over the same clock rows, same run (s)",
            f"{report['baseline_sql_aggregate_seconds']}",
            "",
        ),
        (
            "ratio report / SQL aggregate",
            f"{report['ratio_to_baseline']}×",
            f"≤ 20×: {_at_most(report['ratio_to_baseline'], 20)}",
        ),
        (
            "the month's PDF document from that report (s)",
            f"{report.get('document_pdf_seconds', '—')}",
            "",
        ),
    ]
    table = "\n".join(f"| {name} | {value} | {target} |" for name, value, target in rows)
    return f"""# Benchmarks

Written by `python -m bench.run` (every part: `make bench`) on {results["generated_at"]}
({results["machine"]["platform"]}, Python {results["machine"]["python"]}); the raw
figures are in `bench/results/latest.json`. Every throughput figure stands beside a
baseline measured in the same run: absolute figures drift between runs.

| figure | value | target |
|---|---|---|
{table}

Load: ingest: {ing["load"]}; engine throughput: {eng["load"]}; engine at scale:
{eng["scale_load"]}; notifier: {mail["load"]}; compliance report: {report["load"]}.
Servers, broker, database and load generators share this 2-core machine. Each part
was measured at its `measured_at` in the JSON: `python -m bench.run report` (or any
part's name) measures that part again and keeps the others' last figures.
"""


if __name__ == "__main__":
    sys.exit(main())
