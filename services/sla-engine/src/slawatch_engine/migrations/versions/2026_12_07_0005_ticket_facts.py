"""What a report shows of a ticket, in columns: its service, type, title, assignee, group.

The report document breaks the figures down per service and lists late
tickets with who held them; reading them from the snapshot's JSON cost the
report of a month of 100,000 tickets about 0.4 s on PostgreSQL. The columns
are written with the snapshot (``store.shown_fields``) and filled here for
stored tickets by one statement in the database (the mapping is written out
here, so that a later change of ``shown_fields`` does not change this step).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("service", 200),
    ("category", 200),
    ("title", 500),
    ("assignee", 500),
    ("grp", 200),
)
FILL = {
    "postgresql": """
        UPDATE engine_tickets SET
            service = snapshot->>'service',
            category = snapshot->>'type',
            title = snapshot->>'title',
            assignee = COALESCE(NULLIF(snapshot->'assignee'->>'name', ''),
                                snapshot->'assignee'->>'id'),
            grp = snapshot->>'group'
    """,
    "sqlite": """
        UPDATE engine_tickets SET
            service = json_extract(snapshot, '$.service'),
            category = json_extract(snapshot, '$.type'),
            title = json_extract(snapshot, '$.title'),
            assignee = COALESCE(NULLIF(json_extract(snapshot, '$.assignee.name'), ''),
                                json_extract(snapshot, '$.assignee.id')),
            grp = json_extract(snapshot, '$.group')
    """,
}


def upgrade() -> None:
    for name, length in COLUMNS:
        op.add_column("engine_tickets", sa.Column(name, sa.String(length), nullable=True))
    op.execute(FILL[op.get_bind().dialect.name])


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("engine_tickets", name)
