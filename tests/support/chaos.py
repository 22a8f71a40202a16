"""A chaos monkey: SIGKILLs one service process again and again, restarting it each time."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from support.processes import ServiceProcess

SETTLE_WITHIN_S = 120.0


class Monkey(threading.Thread):
    """Kills ``proc`` ``kills`` times, paced to spread the kills until ``until`` (``time.time``).

    Each round: a random pause, SIGKILL, a random short downtime, then a restart
    that blocks until the service answers ``/readyz`` again. With ``settled``
    (a log file and a line fragment), the restart also waits until that line is
    appended to the log — for the engine, its timer released once it has read
    its input backlog. The pause before the next kill counts from then and
    lasts at least ``min_up`` seconds; pauses are drawn from ``rng`` around
    what is left of the window per remaining kill, so the kills spread over it,
    and once the window is over the remaining ones come after about ``min_up``.

    ``outages`` holds (killed at, ready at, settled at) of every round;
    ``error`` the exception that ended the thread early, if any. ``cancel``
    stops it at the next pause.
    """

    def __init__(
        self,
        proc: ServiceProcess,
        kills: int,
        until: float,
        rng: random.Random,
        *,
        min_up: float = 0.3,
        settled: tuple[Path, str] | None = None,
    ) -> None:
        super().__init__(name=f"chaos:{proc.script}", daemon=True)
        self.proc = proc
        self.kills = kills
        self.until = until
        self.rng = rng
        self.min_up = min_up
        self.settled = settled
        self.outages: list[tuple[float, float, float]] = []
        self.error: BaseException | None = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        cycle_s = 3.0  # learnt from each round: kill to settled
        try:
            while len(self.outages) < self.kills:
                left = self.kills - len(self.outages)
                budget = (self.until - time.time()) / left - cycle_s
                longest = max(self.min_up + 1.0, 2 * budget - self.min_up)
                if self._cancel.wait(self.rng.uniform(self.min_up, longest)):
                    return
                offset = self._log_size()
                killed = time.time()
                self.proc.kill()
                time.sleep(self.rng.uniform(0.0, 1.0))
                self.proc.start()
                ready = time.time()
                self._wait_settled(offset)
                settled = time.time()
                self.outages.append((killed, ready, settled))
                cycle_s = settled - killed
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    def _log_size(self) -> int:
        if self.settled is None or not self.settled[0].exists():
            return 0
        return self.settled[0].stat().st_size

    def _wait_settled(self, offset: int) -> None:
        if self.settled is None:
            return
        path, line = self.settled
        deadline = time.monotonic() + SETTLE_WITHIN_S
        while time.monotonic() < deadline:
            with path.open("rb") as log:
                log.seek(offset)
                if line.encode() in log.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.proc.script}: no {line!r} within {SETTLE_WITHIN_S} s")
