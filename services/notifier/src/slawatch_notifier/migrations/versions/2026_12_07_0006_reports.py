"""Compliance-report mails: one row per report, issue and recipient, with its delivery state.

The primary key is the dedup key (``report:<contract>:<period>:<issue>:<person>:email``),
so a ``report.due`` event read twice stores each mail once; ``as_of`` is the
instant the report is judged at (the event's), asked of the engine on every fetch
so each mail of a report shows the same figures; ``published`` is the outbox flag
of the mail's ``NotificationRecord``.

Revision ID: notifier_0006
Revises: notifier_0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifier_0006"
down_revision: str | None = "notifier_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "notifier_reports"
_INDEXES = {
    "ix_notifier_reports_due": ["status", "next_attempt_at"],
    "ix_notifier_reports_outbox": ["published", "status"],
}


def upgrade() -> None:
    moment = sa.DateTime(timezone=True)
    op.create_table(
        _TABLE,
        sa.Column("id", sa.String(1000), primary_key=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("contract", sa.String(200), nullable=False),
        sa.Column("customer", sa.String(500), nullable=False),
        sa.Column("period", sa.String(40), nullable=False),
        sa.Column("issue", sa.String(200), nullable=False),
        sa.Column("as_of", moment, nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("recipient_name", sa.String(500), nullable=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", moment, nullable=False),
        sa.Column("retry_from", moment, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("interrupted", sa.Integer, nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("updated_at", moment, nullable=False),
        sa.Column("sent_at", moment, nullable=True),
        sa.Column("published", sa.Boolean, nullable=False),
    )
    for name, columns in _INDEXES.items():
        op.create_index(name, _TABLE, columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name=_TABLE)
    op.drop_table(_TABLE)
