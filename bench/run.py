"""slawatch benchmarks: ``make bench`` writes bench/results/latest.json and docs/BENCHMARKS.md.

What is measured so far (pure, in-process, no broker):
- ``calendar.deadlines_per_s``: deadlines computed on the example's cn-office
  calendar (weekdays 08:00-18:30, Asia/Shanghai) for targets from 15 minutes
  to 5 business days, from start instants spread over a year;
- ``clock.replays_per_s``: a clock with a pause replayed and assessed (the
  per-clock work of applying an event or firing a stage), cn-office calendar.
The engine and ingest throughput figures come with their own harness.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from slawatch_common.events import Metric
from slawatch_engine.clock import Clock, Entry, assess, replay
from slawatch_engine.policy import load_policies

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
    calendar = load_policies(ROOT / "deploy/config/slawatch.yaml").calendar("cn-office")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [base + timedelta(minutes=37 * i) for i in range(2000)]

    def work(n: int) -> None:
        for i in range(n):
            calendar.add(starts[i % len(starts)], TARGETS[i % len(TARGETS)])

    return {"deadlines_per_s": round(best_rate(work, 20_000))}


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
        "calendar": bench_calendar(),
        "clock": bench_replay(),
    }
    out = ROOT / "bench/results/latest.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    (ROOT / "docs/BENCHMARKS.md").write_text(render(results))
    print(json.dumps(results, indent=2))
    return 0


def render(results: dict[str, Any]) -> str:
    return f"""# Benchmarks

Produced by `make bench` (which runs `bench/run.py`) on {results["generated_at"]}
({results["machine"]["platform"]}, Python {results["machine"]["python"]}); the raw
figures are in `bench/results/latest.json`.

| figure | value |
|---|---|
| deadlines/s, cn-office calendar, 15 min to 5 days | {results["calendar"]["deadlines_per_s"]:,} |
| clock replays + assessments/s | {results["clock"]["replays_per_s"]:,} |

Scope so far: pure in-process arithmetic. Broker-backed throughput, firing
lateness, memory per clock and the baselines measured in the same run
(bare uvicorn, raw aiokafka consumption, `businesstimedelta`) come with the
engine-at-scale and calendar work.
"""


if __name__ == "__main__":
    sys.exit(main())
