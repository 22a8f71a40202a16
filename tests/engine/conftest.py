"""Fixtures of the engine's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database for the engine: SQLite, then PostgreSQL (the two it runs on)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/engine.db"
    request.applymarker(pytest.mark.postgres)
    pg: str = request.getfixturevalue("pg_url")
    return pg
