"""Compliance: tickets' creation instant and rating, clocks' last entry, outages, budget stages.

- ``engine_tickets.created_at`` (the report's population is the tickets created
  in the period), filled for stored tickets from the first entry of their
  clocks' timelines (the instant of their ``ticket.created``);
  ``rating_score``, ``rating_scale`` and ``rated_at`` (the latest rating, as
  given: the report divides them exactly);
- ``engine_clocks.last_entry_at``: the instant of the timeline's last entry, so
  a report as of an earlier instant knows which clocks to replay up to it;
- ``engine_outages``: the firing intervals of monitored services' alerts, and
  how far each has been counted on ``/metrics`` while it fired;
- ``engine_budget_stages``: the error-budget stages already emitted per
  contract, availability group and period.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

from slawatch_common.db import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("engine_tickets", sa.Column("created_at", UtcDateTime(), nullable=True))
    op.add_column("engine_tickets", sa.Column("rating_score", sa.Float(), nullable=True))
    op.add_column("engine_tickets", sa.Column("rating_scale", sa.Float(), nullable=True))
    op.add_column("engine_tickets", sa.Column("rated_at", UtcDateTime(), nullable=True))
    op.create_index("ix_engine_tickets_policy_created", "engine_tickets", ["policy", "created_at"])
    op.add_column("engine_clocks", sa.Column("last_entry_at", UtcDateTime(), nullable=True))
    _backfill()
    op.create_table(
        "engine_outages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(200), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=True),
        sa.Column("counted_until", UtcDateTime(), nullable=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("service", "fingerprint", "starts_at", name="uq_engine_outages_alert"),
    )
    op.create_index("ix_engine_outages_service_starts", "engine_outages", ["service", "starts_at"])
    op.create_index("ix_engine_outages_service_ends", "engine_outages", ["service", "ends_at"])
    op.create_table(
        "engine_budget_stages",
        sa.Column("contract", sa.String(200), primary_key=True),
        sa.Column("grp", sa.String(200), primary_key=True),
        sa.Column("period", sa.String(40), primary_key=True),
        sa.Column("stage", sa.String(40), primary_key=True),
        sa.Column("emitted_at", UtcDateTime(), nullable=False),
    )


def _backfill() -> None:
    """Each stored clock's last entry, and each ticket's creation: its clocks' first entry."""
    conn = op.get_bind()
    clocks = sa.table(
        "engine_clocks",
        sa.column("id", sa.String()),
        sa.column("ticket_key", sa.String()),
        sa.column("timeline", sa.JSON()),
        sa.column("last_entry_at", UtcDateTime()),
    )
    tickets = sa.table(
        "engine_tickets",
        sa.column("key", sa.String()),
        sa.column("created_at", UtcDateTime()),
    )
    created: dict[str, datetime] = {}
    last: list[dict[str, object]] = []
    for row in conn.execute(sa.select(clocks.c.id, clocks.c.ticket_key, clocks.c.timeline)):
        instants = [datetime.fromisoformat(entry["at"]) for entry in row.timeline]
        if not instants:
            continue
        last.append({"b_id": row.id, "last_entry_at": max(instants)})
        first = min(instants)
        if row.ticket_key not in created or first < created[row.ticket_key]:
            created[row.ticket_key] = first
    if last:
        conn.execute(
            clocks.update().where(clocks.c.id == sa.bindparam("b_id")),
            last,
        )
    if created:
        conn.execute(
            tickets.update().where(tickets.c.key == sa.bindparam("b_key")),
            [{"b_key": key, "created_at": at} for key, at in created.items()],
        )


def downgrade() -> None:
    op.drop_table("engine_budget_stages")
    op.drop_index("ix_engine_outages_service_ends", "engine_outages")
    op.drop_index("ix_engine_outages_service_starts", "engine_outages")
    op.drop_table("engine_outages")
    op.drop_column("engine_clocks", "last_entry_at")
    op.drop_index("ix_engine_tickets_policy_created", "engine_tickets")
    op.drop_column("engine_tickets", "rated_at")
    op.drop_column("engine_tickets", "rating_scale")
    op.drop_column("engine_tickets", "rating_score")
    op.drop_column("engine_tickets", "created_at")
