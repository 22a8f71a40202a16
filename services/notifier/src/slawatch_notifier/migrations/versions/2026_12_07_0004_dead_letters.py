"""Dead letters in the shape both services share (slawatch_common.consumer).

The raw key and value as bytes, the reason, the error class and message, first
and last seen and how often, when it was replayed; one row per record.

Revision ID: notifier_0004
Revises: notifier_0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from slawatch_common.consumer import rebuild_dead_letter_table

revision: str = "notifier_0004"
down_revision: str | None = "notifier_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    rebuild_dead_letter_table("notifier_dead_letters", detail_column="detail")


def downgrade() -> None:
    raise NotImplementedError("dead letters are not brought back to the older shape")
