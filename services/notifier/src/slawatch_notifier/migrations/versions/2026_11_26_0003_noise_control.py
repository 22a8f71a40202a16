"""Noise control: rate windows and digests, quiet-hours deferral, fallback channels.

Notifications learn when they fell due, why they wait (quiet hours), whom they
stand in for (fallback), the digest they were folded into, the deadline and
priority a digest lists, and a note saying why in words. ``notifier_rate_windows``
keeps each recipient's current window per channel.

Revision ID: notifier_0003
Revises: notifier_0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifier_0003"
down_revision: str | None = "notifier_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "notifier_notifications"
_NEW_COLUMNS = (
    "due_at",
    "deferred_until",
    "fallback_of",
    "digest_id",
    "deadline",
    "priority",
    "note",
)
_INDEXES = {
    "ix_notifier_notifications_channel_due": ["status", "channel", "next_attempt_at"],
    "ix_notifier_notifications_fallback_of": ["fallback_of"],
    "ix_notifier_notifications_digest_id": ["digest_id"],
}


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    # Added nullable and without a table rebuild: on SQLite a rebuild of the
    # notifications table would cascade-delete their attempts.
    op.add_column(_TABLE, sa.Column("due_at", moment, nullable=True))
    op.add_column(_TABLE, sa.Column("deferred_until", moment, nullable=True))
    op.add_column(_TABLE, sa.Column("fallback_of", sa.String(1000), nullable=True))
    op.add_column(_TABLE, sa.Column("digest_id", sa.String(1000), nullable=True))
    op.add_column(_TABLE, sa.Column("deadline", moment, nullable=True))
    op.add_column(_TABLE, sa.Column("priority", sa.String(16), nullable=True))
    op.add_column(_TABLE, sa.Column("note", sa.Text, nullable=True))
    op.execute(sa.text(f"UPDATE {_TABLE} SET due_at = created_at"))
    for name, columns in _INDEXES.items():
        op.create_index(name, _TABLE, columns)
    op.create_table(
        "notifier_rate_windows",
        sa.Column("recipient", sa.String(200), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("started_at", moment, nullable=False),
        sa.Column("ends_at", moment, nullable=False),
        sa.Column("max", sa.Integer, nullable=False),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("held", sa.Integer, nullable=False),
        sa.Column("digest_id", sa.String(1000), nullable=True),
        sa.Column("updated_at", moment, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notifier_rate_windows")
    for name in _INDEXES:
        op.drop_index(name, table_name=_TABLE)
    with op.batch_alter_table(_TABLE) as batch:
        for column in _NEW_COLUMNS:
            batch.drop_column(column)
