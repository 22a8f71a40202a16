"""A real Prometheus server (Debian's package) as a process of the test.

``make prometheus`` (``deploy/prometheus/install.sh``) installs the binary and
``promtool``; the packaged service never runs. Each test starts its own
Prometheus on a free loopback port with a configuration, rule files and TSDB
of its own: it scrapes the given targets and evaluates the rules every
second, so a test sees a new value within a few seconds. Queries go through
the HTTP API (``query``, ``wait_for``, ``alerts``), as a dashboard's would.

Without the binaries a test is skipped, with the reason, except in CI
(``CI=true``), where it fails: there ``make test`` has installed them, so a
missing binary is a broken setup, not a machine without Prometheus.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
import yaml

from support.net import free_port
from support.processes import Daemon, until_ready

BINARY = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "rules"

Sample = tuple[dict[str, str], float]


def require(binary: Path) -> Path:
    """``binary`` if it exists; otherwise skip the test, or fail it in CI."""
    if binary.exists():
        return binary
    reason = f"{binary} is missing: run `make prometheus` first"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        raise RuntimeError(reason)
    pytest.skip(reason)


def rule_files() -> list[Path]:
    """The shipped rule files, ``deploy/prometheus/rules/*.yml``."""
    return sorted(RULES.glob("*.yml"))


def scrape_config(
    targets: Sequence[str], rules: Sequence[Path], *, job: str = "slawatch"
) -> dict[str, Any]:
    """Scrape ``targets`` (``host:port``, ``/metrics``) and evaluate ``rules`` every second."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rules],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }


class Prometheus(Daemon):
    """One ``prometheus`` process scraping ``targets``, its files under ``workdir``.

    Use as ``async with Prometheus(targets, tmp_path) as prometheus:``, or call
    ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        targets: Sequence[str],
        workdir: Path,
        *,
        rules: Sequence[Path] | None = None,
        job: str = "slawatch",
    ) -> None:
        self._binary = require(BINARY)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._config = scrape_config(targets, rule_files() if rules is None else rules, job=job)
        self._workdir = workdir
        self._config_path = workdir / "prometheus.yml"
        self._log_path = workdir / "prometheus.log"
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Prometheus:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, within: float = 30.0) -> None:
        """Write the configuration, start the process, wait until it answers ``/-/ready``."""
        self._config_path.write_text(yaml.safe_dump(self._config), encoding="utf-8")
        with self._log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(self._binary),
                f"--config.file={self._config_path}",
                f"--storage.tsdb.path={self._workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await until_ready(self._process, self.url, within, "prometheus", self.log_tail)

    async def query(self, expr: str) -> list[Sample]:
        """The instant vector of ``expr`` now: ``(labels, value)`` per series, sorted by labels.

        A scalar comes back as one sample without labels. Raises
        ``RuntimeError`` when Prometheus rejects the query.
        """
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            response = await client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body.get('error', response.text)}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise RuntimeError(f"query {expr!r} gave a {data['resultType']}, not a vector")
        samples = [(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]
        return sorted(samples, key=lambda sample: sorted(sample[0].items()))

    async def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[Sample]], bool],
        within: float = 30.0,
    ) -> list[Sample]:
        """Query ``expr`` until ``predicate`` holds for its result; that result.

        Raises ``TimeoutError`` with the last result and the log's tail after
        ``within`` seconds.
        """
        deadline = time.monotonic() + within
        while True:
            result = await self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{expr!r} still {result} after {within} s; log:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.25)

    async def alerts(self) -> list[dict[str, Any]]:
        """The alerts the rules hold now (``/api/v1/alerts``): labels, annotations, state, value."""
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            response = await client.get("/api/v1/alerts")
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
        return alerts


def one_value(expected: float, *, rel: float = 1e-9) -> Callable[[list[Sample]], bool]:
    """A ``wait_for`` predicate: exactly one series, with a value within ``rel`` of ``expected``."""
    return lambda samples: len(samples) == 1 and math.isclose(samples[0][1], expected, rel_tol=rel)
