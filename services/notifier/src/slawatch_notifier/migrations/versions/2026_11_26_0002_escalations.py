"""Escalations (chain snapshot, status, ack, fence), their scheduled steps; notifications know their step.

Revision ID: notifier_0002
Revises: notifier_0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifier_0002"
down_revision: str | None = "notifier_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOTIFICATION_COLUMNS = ("cycle", "step", "repeat", "generation", "scheduled", "locale")


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    # Rows written before this revision are step 0 of cycle 1, generation 0, immediate.
    op.add_column(
        "notifier_notifications", sa.Column("cycle", sa.Integer, nullable=False, server_default="1")
    )
    op.add_column(
        "notifier_notifications", sa.Column("step", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column(
        "notifier_notifications",
        sa.Column("repeat", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column(
        "notifier_notifications",
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column(
        "notifier_notifications",
        sa.Column("scheduled", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("notifier_notifications", sa.Column("locale", sa.String(16), nullable=True))
    op.create_index(
        "ix_notifier_notifications_escalation",
        "notifier_notifications",
        ["clock_id", "cycle", "status"],
    )
    op.create_table(
        "notifier_escalations",
        sa.Column("clock_id", sa.String(200), primary_key=True),
        sa.Column("cycle", sa.Integer, primary_key=True),
        sa.Column("ticket_source", sa.String(200), nullable=False),
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("chain", sa.JSON, nullable=False),
        sa.Column("event", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("breach_event_id", sa.String(200), nullable=True),
        sa.Column("breach_at", moment, nullable=True),
        sa.Column("withdrawn", sa.Boolean, nullable=False),
        sa.Column("acknowledged_by", sa.String(500), nullable=True),
        sa.Column("acknowledged_at", moment, nullable=True),
        sa.Column("started_at", moment, nullable=False),
        sa.Column("updated_at", moment, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_notifier_escalations_ticket", "notifier_escalations", ["ticket_source", "ticket_id"]
    )
    op.create_table(
        "notifier_scheduled_steps",
        sa.Column("id", sa.String(600), primary_key=True),
        sa.Column("clock_id", sa.String(200), nullable=False),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("due_at", moment, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=True),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("updated_at", moment, nullable=False),
    )
    op.create_index(
        "ix_notifier_scheduled_steps_due", "notifier_scheduled_steps", ["status", "due_at"]
    )
    op.create_index(
        "ix_notifier_scheduled_steps_escalation",
        "notifier_scheduled_steps",
        ["clock_id", "cycle", "status"],
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_scheduled_steps_escalation", table_name="notifier_scheduled_steps")
    op.drop_index("ix_notifier_scheduled_steps_due", table_name="notifier_scheduled_steps")
    op.drop_table("notifier_scheduled_steps")
    op.drop_index("ix_notifier_escalations_ticket", table_name="notifier_escalations")
    op.drop_table("notifier_escalations")
    op.drop_index("ix_notifier_notifications_escalation", table_name="notifier_notifications")
    with op.batch_alter_table("notifier_notifications") as batch:
        for column in _NOTIFICATION_COLUMNS:
            batch.drop_column(column)
