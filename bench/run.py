"""slawatch benchmarks: ``make bench`` writes bench/results/latest.json and docs/BENCHMARKS.md.

What is measured so far (pure, in-process, no broker):
- ``calendar``: deadlines per second on a one-year calendar with holidays,
  beside the ``businesstimedelta`` package on the same inputs in the same run
  (``deadlines_per_s``, ``baseline_businesstimedelta_per_s``), how many of
  100 deadlines agree, and the cost of one one-year target;
- ``clock.replays_per_s``: a clock with a pause replayed and assessed (the
  per-clock work of applying an event or firing a stage), cn-office calendar.
The engine and ingest throughput figures come with their own harness.
"""

from __future__ import annotations

import json
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
from slawatch_common.events import Metric
from slawatch_engine.clock import Clock, Entry, assess, replay
from slawatch_engine.policy import CalendarConfig, load_policies

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [900, 3600, 4 * 3600, 8 * 3600, 37_800 * 5]


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


def main() -> int:
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
        "ingest": bench_ingest(),
        "engine": bench_engine(),
        "calendar": bench_calendar(),
        "clock": bench_replay(),
    }
    out = ROOT / "bench/results/latest.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    (ROOT / "docs/BENCHMARKS.md").write_text(render(results))
    print(json.dumps(results, indent=2))
    return 0


def render(results: dict[str, Any]) -> str:
    cal = results["calendar"]
    baseline = cal["baseline_businesstimedelta_per_s"]
    ing = results["ingest"]
    eng = results["engine"]
    return f"""# Benchmarks

Produced by `make bench` (which runs `python -m bench.run`) on {results["generated_at"]}
({results["machine"]["platform"]}, Python {results["machine"]["python"]}); the raw
figures are in `bench/results/latest.json`.

| figure | value |
|---|---|
| ingest, single events, validated, broker-acked 202 (req/s) | {ing["rps"]:,} |
| bare uvicorn echo app, same load, same run (req/s) | {ing["baseline_bare_uvicorn_rps"]:,} |
| ratio ingest / bare uvicorn | {ing["ratio_to_baseline"]} |
| ingest, batch endpoint (events/s) | {ing["batch_events_per_s"]:,} |
| engine, events applied with durable state (events/s) | {eng["events_per_s"]:,} |
| raw aiokafka consumption, same topic, same run | {eng["baseline_raw_consume_per_s"]:,} |
| ratio engine / raw consumption | {eng["ratio_to_baseline"]} |
| deadlines/s, 1-year calendar with holidays, 15 min to 1 year | {cal["deadlines_per_s"]:,} |
| same inputs, `businesstimedelta` (baseline, same run) | {baseline:,} |
| ratio slawatch / baseline | {cal["deadlines_per_s"] / baseline:.0f}× |
| deadlines equal to the baseline's (of 100) | {cal["same_deadline_of_100"]} |
| one deadline with a one-year target | {cal["one_year_target_us"]} µs |
| clock replays + assessments/s | {results["clock"]["replays_per_s"]:,} |

Load: {ing["load"]}; engine: {eng["load"]}. Servers, broker, database and
load generator share this 2-core machine.
Not measured yet: ingest p99 at half load (needs a constant-rate generator),
firing lateness, memory per clock and the restart figures.
"""


if __name__ == "__main__":
    sys.exit(main())
