"""Fixtures of the notifier tests."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from deploy.dev.sms_sink import SmsSink

from notifier.harness import SettingsMaker, service_settings
from slawatch_common.topics import Topics
from support.smtp import SmtpSink


@pytest.fixture
def make_settings(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics, smtp_sink: SmtpSink, sms_sink: SmsSink
) -> SettingsMaker:
    """``service_settings`` against this test's topics, sinks and SQLite file; takes
    ``notifier=`` and further settings."""
    return partial(service_settings, tmp_path, kafka_bootstrap, topics, smtp_sink, sms_sink)
