"""Fixtures of the ingest tests: settings and a served app on the shared broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from ingest.harness import TOKEN, serve
from slawatch_common.topics import Topics
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings


@pytest.fixture
def settings(kafka_bootstrap: str, topics: Topics) -> IngestSettings:
    """Settings for an app on the shared broker, under the test's own topic prefix."""
    return IngestSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topics.prefix,
        kafka_partitions=2,
        ingest_tokens=(TOKEN, "other-token"),
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
async def client(settings: IngestSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an ingest app served by uvicorn, authenticated with ``TOKEN``."""
    async with serve(create_app(settings)) as client:
        yield client
