"""Retries on a time budget, bounded crash recovery, redrive.

Notifications learn when their retry budget began (``retry_from``: the first
attempt, or the first after a redrive), their first failed attempt since then
(``failing_since``: when the fallback joins in), how many of their sends a
crash interrupted (``interrupted``) and how often they were redriven
(``redrives``: a generation in the event id of their records). A notification
tried before this revision counts its budget from when it fell due.

Revision ID: notifier_0005
Revises: notifier_0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifier_0005"
down_revision: str | None = "notifier_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "notifier_notifications"
_NEW_COLUMNS = ("retry_from", "failing_since", "interrupted", "redrives")


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    # Added without a table rebuild: on SQLite a rebuild of the notifications
    # table would cascade-delete their attempts.
    op.add_column(_TABLE, sa.Column("retry_from", moment, nullable=True))
    op.add_column(_TABLE, sa.Column("failing_since", moment, nullable=True))
    op.add_column(_TABLE, sa.Column("interrupted", sa.Integer, nullable=False, server_default="0"))
    op.add_column(_TABLE, sa.Column("redrives", sa.Integer, nullable=False, server_default="0"))
    op.execute(
        sa.text(f"UPDATE {_TABLE} SET retry_from = COALESCE(due_at, created_at) WHERE attempts > 0")
    )


def downgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        for column in _NEW_COLUMNS:
            batch.drop_column(column)
