"""Notifications (the dedup key is the primary key), their delivery attempts, dead letters.

Revision ID: notifier_0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifier_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    op.create_table(
        "notifier_notifications",
        sa.Column("id", sa.String(1000), primary_key=True),
        sa.Column("sla_event_id", sa.String(200), nullable=False),
        sa.Column("clock_id", sa.String(200), nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("ticket_source", sa.String(200), nullable=False),
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("recipient_name", sa.String(500), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", moment, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("updated_at", moment, nullable=False),
        sa.Column("published", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_notifier_notifications_due", "notifier_notifications", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_notifier_notifications_outbox", "notifier_notifications", ["published", "status"]
    )
    op.create_table(
        "notifier_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "notification_id",
            sa.String(1000),
            sa.ForeignKey("notifier_notifications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("started_at", moment, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("latency_ms", sa.Integer, nullable=True),
        sa.Column("provider_message_id", sa.String(500), nullable=True),
        sa.UniqueConstraint("notification_id", "number", name="uq_notifier_attempts_number"),
    )
    op.create_table(
        "notifier_dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("key", sa.Text, nullable=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("received_at", moment, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notifier_dead_letters")
    op.drop_table("notifier_attempts")
    op.drop_index("ix_notifier_notifications_outbox", table_name="notifier_notifications")
    op.drop_index("ix_notifier_notifications_due", table_name="notifier_notifications")
    op.drop_table("notifier_notifications")
