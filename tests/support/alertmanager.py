"""A real Prometheus Alertmanager (Debian's package) as a process of the test.

``make alertmanager`` (``deploy/alertmanager/install.sh``) installs the
binary; the packaged service never runs. Each test starts its own
Alertmanager on a free loopback port, without clustering, with a
configuration and storage of its own, and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from support.net import free_port
from support.processes import Daemon, until_ready

BINARY = Path("/usr/bin/prometheus-alertmanager")


def webhook_config(url: str, token: str, *, interval_s: int = 1) -> dict[str, Any]:
    """Every alert to one webhook receiver at ``url``, bearer ``token``, resolutions included.

    Groups are sent ``interval_s`` after their first alert and after each
    change, so a test sees a notification within a few seconds.
    """
    interval = f"{interval_s}s"
    return {
        "global": {"resolve_timeout": "5s"},
        "route": {
            "receiver": "slawatch",
            "group_by": ["alertname", "service"],
            "group_wait": interval,
            "group_interval": interval,
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "slawatch",
                "webhook_configs": [
                    {
                        "url": url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }


def rfc3339(moment: datetime) -> str:
    """``moment`` (aware) as Alertmanager's API takes it."""
    return moment.isoformat().replace("+00:00", "Z")


class Alertmanager(Daemon):
    """One ``prometheus-alertmanager`` process with ``config``, its files under ``workdir``."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: run `make alertmanager` first")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._config = config
        self._workdir = workdir
        self._config_path = workdir / "alertmanager.yml"
        self._log_path = workdir / "alertmanager.log"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, within: float = 15.0) -> None:
        """Write the configuration, start the process, wait until it answers ``/-/ready``."""
        self._config_path.write_text(yaml.safe_dump(self._config), encoding="utf-8")
        with self._log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(BINARY),
                f"--config.file={self._config_path}",
                f"--storage.path={self._workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no clustering, no gossip port
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await until_ready(self._process, self.url, within, "alertmanager", self.log_tail)

    async def post_alert(
        self, labels: dict[str, str], starts_at: datetime, ends_at: datetime
    ) -> None:
        """``POST /api/v2/alerts``, as Prometheus does; an ``ends_at`` past means resolved."""
        alert = {
            "labels": labels,
            "annotations": {"summary": f"{labels['alertname']} on {labels.get('service')}"},
            "startsAt": rfc3339(starts_at),
            "endsAt": rfc3339(ends_at),
            "generatorURL": "http://prometheus.invalid/graph",
        }
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            response = await client.post("/api/v2/alerts", json=[alert])
        response.raise_for_status()
