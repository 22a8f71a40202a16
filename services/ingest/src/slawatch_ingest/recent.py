"""The event ids this process had acknowledged lately, so a retried delivery is not produced again.

Every consumer deduplicates by ``event_id`` anyway; this only spares the
topic the repeats a sender's retries would add (a sender that did not see
the 202, Alertmanager's ``repeat_interval``). It is bounded (least recently
seen ids go first), per process and lost on restart: a repeat it misses is
produced and dropped downstream, which is harmless.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class RecentIds:
    """At most ``capacity`` ids, the least recently seen evicted first."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def remember(self, event_ids: Iterable[str]) -> None:
        """Record ids the broker has acknowledged."""
        for event_id in event_ids:
            self._ids[event_id] = None
            self._ids.move_to_end(event_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
