"""Alembic environment of the SLA engine's tables (version table: alembic_version_engine)."""

from slawatch_common.db import run_env
from slawatch_engine.store import metadata

run_env(metadata)
