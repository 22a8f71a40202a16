"""The rows the engine itself writes for a new ticket, and copies of them.

``Ledger.apply`` of a ``ticket.created`` on an in-memory ``Workset``, then the
values ``Workset.save`` inserts, captured rather than rebuilt here. Tickets
come in few shapes, so one ticket per shape goes through the engine (a
*template*, its id a placeholder) and the others are copies with their id,
partition and creation instant put in; ``check`` compares copies with rows the
engine built in full and raises on any difference.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import JSON, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.scale.plan import CONFIG, SOURCE, Spec, utc
from slawatch_common.db import UtcDateTime
from slawatch_common.events import TicketEvent
from slawatch_engine import store
from slawatch_engine.ledger import Ledger
from slawatch_engine.policy import load_policies
from slawatch_engine.store import Workset

Record = tuple[Any, ...]
Rows = tuple[list[Record], list[Record]]
"""``engine_tickets`` and ``engine_clocks`` records, in their tables' column order."""


class _Capture:
    """Stands in for the connection ``Workset.save`` writes to; keeps what it inserts."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)

    async def execute(self, statement: Any, params: list[dict[str, Any]]) -> None:
        if statement.is_insert is not True:
            raise RuntimeError(f"a new working set should only insert, not {statement}")
        self.rows[statement.table.name].extend(params)


@cache
def _ledger() -> Ledger:
    return Ledger(load_policies(CONFIG), "unused")


async def build_rows(specs: Sequence[Spec], now: float) -> Rows:
    """The records the engine inserts when it applies these tickets' ``ticket.created``
    at ``now``; raises if it refuses one."""
    at = utc(now)
    work = Workset()
    for tid, created, priority, service, partition in specs:
        event = TicketEvent.model_validate(
            {
                "event_id": f"{SOURCE}-created-{tid}",
                "type": "ticket.created",
                "occurred_at": utc(created),
                "source": SOURCE,
                "data": {"id": tid, "priority": priority, "service": service, "status": "open"},
            }
        )
        if (rejected := _ledger().apply(work, event, partition, at).rejected) is not None:
            raise RuntimeError(f"the engine refuses {tid}: {rejected}")
    capture = _Capture()
    await work.save(cast(AsyncConnection, capture), at)
    return (
        [_record(store.tickets, row) for row in capture.rows[store.tickets.name]],
        [_record(store.clocks, row) for row in capture.rows[store.clocks.name]],
    )


def _record(table: Table, row: dict[str, Any]) -> Record:
    # JSON columns as SQLAlchemy's default serialiser writes them
    return tuple(
        json.dumps(row[c.name]) if isinstance(c.type, JSON) else row[c.name] for c in table.columns
    )


def columns(table: Table) -> list[str]:
    return [c.name for c in table.columns]


def column_at(table: Table, name: str) -> int:
    return columns(table).index(name)


# instants a clock's replay derives from its timeline: they move with its creation
_SHIFTED = [
    n
    for n, c in enumerate(store.clocks.columns)
    if isinstance(c.type, UtcDateTime) and c.name != "updated_at"
]


@dataclass(frozen=True)
class Template:
    """What the engine wrote for ticket ``placeholder`` created at ``created`` (partition
    0), and its copy for another ticket: the id and partition put in, and for another
    creation instant every instant the replay derives moved with it."""

    placeholder: str
    created: datetime
    tickets: list[Record] = field(default_factory=list)
    clocks: list[Record] = field(default_factory=list)

    def copy(self, tid: str, partition: int, created: datetime | None = None) -> Rows:
        texts = [(self.placeholder, tid)]
        shift = None
        if created is not None and created != self.created:
            texts.append((self.created.isoformat(), created.isoformat()))
            shift = created - self.created
        tickets_at = column_at(store.tickets, "partition")
        clocks_at = column_at(store.clocks, "partition")
        return (
            [_put(r, texts, (tickets_at, partition), None) for r in self.tickets],
            [_put(r, texts, (clocks_at, partition), shift) for r in self.clocks],
        )


def _put(
    record: Record, texts: list[tuple[str, str]], value: tuple[int, int], shift: timedelta | None
) -> Record:
    values = list(record)
    for n, text in enumerate(values):
        if isinstance(text, str):
            for old, new in texts:
                text = text.replace(old, new)
            values[n] = text
    if shift is not None:
        for n in _SHIFTED:
            if values[n] is not None:
                values[n] += shift
    values[value[0]] = value[1]
    return tuple(values)


async def templates(specs: list[Spec], now: float) -> dict[str, Template]:
    """One template per spec (its id is the placeholder), built by the engine's code."""
    tickets, clocks = await build_rows(specs, now)
    made = {tid: Template(tid, utc(created)) for tid, created, *_ in specs}
    for record in tickets:
        made[record[column_at(store.tickets, "ticket_id")]].tickets.append(record)
    for record in clocks:
        made[record[column_at(store.clocks, "ticket_key")].split(":", 1)[1]].clocks.append(record)
    return made


def check(copies: list[Rows], real: Rows) -> None:
    """Raise unless the copies are exactly the rows the engine wrote (in any order)."""
    tickets = sorted(r for t, _ in copies for r in t)
    clocks = sorted(r for _, c in copies for r in c)
    if tickets != sorted(real[0]) or clocks != sorted(real[1]):
        raise RuntimeError("copied rows differ from the rows the engine writes")
