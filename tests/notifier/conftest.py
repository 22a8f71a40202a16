"""Fixtures of the notifier tests: the development SMS provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deploy.dev.sms_sink import SmsSink


@pytest.fixture
def sms_provider() -> Iterator[SmsSink]:
    """The SMS sink from deploy/dev on a free port, with the default dev token."""
    sink = SmsSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
