"""Outside development mode each service refuses to start on a development value, naming it.

Each service is started as its own process with the environment of a fresh
installation (no ``SLAWATCH_ENV``): it exits non-zero before it serves or
connects to anything, and its message names every setting left at a
development value. With those settings given real values it gets past the
check (the last case: the engine's settings alone).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from slawatch_common.settings import DevelopmentValuesError
from slawatch_engine.settings import EngineSettings
from slawatch_ingest.settings import IngestSettings
from slawatch_notifier.settings import NotifierSettings

BIN = Path(sys.executable).parent
SECRET = "a-real-secret-of-more-than-thirty-two-bytes"


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAWATCH_")}
    return {**env, "SLAWATCH_ENV": "production", **extra}


@pytest.mark.parametrize(
    ("script", "named"),
    [
        ("slawatch-ingest", ["SLAWATCH_INGEST_TOKENS", "SLAWATCH_ADMIN_TOKENS"]),
        ("slawatch-engine", ["SLAWATCH_REPORT_TOKENS", "SLAWATCH_ADMIN_TOKENS"]),
        (
            "slawatch-notifier",
            [
                "SLAWATCH_ACK_SECRET",
                "SLAWATCH_ENGINE_REPORT_TOKEN",
                "SLAWATCH_SMS_TOKEN",
                "SLAWATCH_SMS_URL",
                "SLAWATCH_ADMIN_TOKENS",
            ],
        ),
    ],
)
def test_a_service_on_development_defaults_exits_naming_each(script: str, named: list[str]) -> None:
    done = subprocess.run(
        [str(BIN / script)], env=production_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "development values outside development mode" in done.stderr
    for setting in named:
        assert setting in done.stderr, (setting, done.stderr)


def test_the_check_passes_with_real_values_and_in_development_mode() -> None:
    admin, production = ("ops-1",), "production"
    IngestSettings(
        ingest_tokens=("jira-1",), admin_tokens=admin, environment=production
    ).refuse_development_values()
    EngineSettings(
        report_tokens=("reader-1",), admin_tokens=admin, environment=production
    ).refuse_development_values()
    notifier = NotifierSettings(
        ack_secret=SecretStr(SECRET),
        engine_report_token=SecretStr("reader-1"),
        sms_token=SecretStr("sms-1"),
        sms_url="https://sms.example.com/send",
        admin_tokens=admin,
        environment=production,
    )
    notifier.refuse_development_values(notifier.generic_sms_values())
    EngineSettings(environment="development").refuse_development_values()
    short = NotifierSettings(
        ack_secret=SecretStr("short"),
        engine_report_token=SecretStr("r"),
        admin_tokens=admin,
        environment=production,
    )
    with pytest.raises(DevelopmentValuesError, match="SLAWATCH_ACK_SECRET: shorter than 32"):
        short.refuse_development_values()
    shifted = EngineSettings(
        report_tokens=("r",), clock_shift_s=60, admin_tokens=admin, environment=production
    )
    with pytest.raises(DevelopmentValuesError, match="SLAWATCH_CLOCK_SHIFT_S"):
        shifted.refuse_development_values()


def test_only_slawatch_env_development_is_development_mode() -> None:
    """Any other value is production (a typo never switches the checks off), and no
    variable but SLAWATCH_ENV counts."""
    for value in ("staging", "prod", "Development ", ""):
        settings = EngineSettings(environment=value)
        with pytest.raises(DevelopmentValuesError):
            settings.refuse_development_values()
    env = production_env(ENVIRONMENT="development")
    del env["SLAWATCH_ENV"]
    other = subprocess.run(
        [str(BIN / "slawatch-ingest")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode != 0
    assert "SLAWATCH_INGEST_TOKENS" in other.stderr


def test_a_provider_or_robot_address_that_is_not_https_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "slawatch.yaml"
    config.write_text(
        "notifier:\n"
        "  channels:\n"
        "    sms:\n"
        "      providers: [twilio]\n"
        "      twilio: {account_sid: AC1, from_number: '+15550000000', "
        "endpoint: 'http://sms.example.com'}\n"
        "    webhook:\n"
        "      itsm: {url: 'http://itsm.example.com/hook'}\n"
        "    slack:\n"
        "      ops: {url: 'https://hooks.slack.com/services/T/B/X'}\n"
    )
    env = production_env(
        SLAWATCH_CONFIG_FILE=str(config),
        SLAWATCH_SMS_TWILIO_AUTH_TOKEN="twilio-auth-token",
        SLAWATCH_WEBHOOK_ITSM_SECRET="itsm-webhook-secret",
        SLAWATCH_ACK_SECRET=SECRET,
        SLAWATCH_ENGINE_REPORT_TOKEN="engine-report-token-1",
        SLAWATCH_ADMIN_TOKENS='["admin-token-1"]',
    )
    done = subprocess.run(
        [str(BIN / "slawatch-notifier")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "SLAWATCH_SMS_TWILIO_ENDPOINT: not https" in done.stderr, done.stderr
    assert "SLAWATCH_WEBHOOK_ITSM_URL: not https" in done.stderr
    assert "SLACK" not in done.stderr
    assert "SLAWATCH_SMS_URL" not in done.stderr  # the generic provider is not in use
