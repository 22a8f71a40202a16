"""Alembic environment for the notifier's tables (version table ``alembic_version_notifier``)."""

from slawatch_common.db import run_env
from slawatch_notifier.store import metadata

run_env(metadata)
