"""Reports issued: ``engine_report_issues``, one row per contract, period and issue.

A scheduled report is issued once per contract and period (issue
``scheduled``), whichever engine sees its period end first and however often
engines restart; one issued by hand has an issue of its own (``manual:<id>``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from slawatch_common.db import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "engine_report_issues",
        sa.Column("contract", sa.String(200), primary_key=True),
        sa.Column("period", sa.String(40), primary_key=True),
        sa.Column("issue", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(600), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("engine_report_issues")
