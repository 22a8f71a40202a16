"""IngestSettings read from the environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from slawatch_ingest.auth import token_accepted
from slawatch_ingest.settings import IngestSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "TOKENS"):
        monkeypatch.delenv(f"SLAWATCH_INGEST_{name}", raising=False)
    monkeypatch.delenv("SLAWATCH_PRODUCE_TIMEOUT_S", raising=False)
    monkeypatch.delenv("SLAWATCH_MAX_BODY_BYTES", raising=False)
    monkeypatch.delenv("SLAWATCH_EARLIEST_INSTANT", raising=False)
    monkeypatch.delenv("SLAWATCH_MAX_FUTURE_S", raising=False)
    settings = IngestSettings()
    assert (settings.http_port, settings.ingest_tokens) == (8080, ("dev-token",))
    assert (settings.produce_timeout_s, settings.max_body_bytes) == (5.0, 5 * 1024 * 1024)
    assert (settings.earliest_instant, settings.max_future_s) == (
        datetime(2000, 1, 1, tzinfo=UTC),
        3600.0,
    )


def test_port_and_tokens_come_from_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLAWATCH_INGEST_PORT", "9090")
    monkeypatch.setenv("SLAWATCH_HTTP_PORT", "1")  # not ingest's variable
    monkeypatch.setenv("SLAWATCH_INGEST_TOKENS", " alpha, beta ,,")
    settings = IngestSettings()
    assert (settings.http_port, settings.ingest_tokens) == (9090, ("alpha", "beta"))


def test_the_instant_window_comes_from_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLAWATCH_EARLIEST_INSTANT", "2020-01-01T00:00:00+08:00")
    monkeypatch.setenv("SLAWATCH_MAX_FUTURE_S", "90")
    settings = IngestSettings()
    assert settings.earliest_instant == datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=8)))
    assert settings.max_future_s == 90.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLAWATCH_EARLIEST_INSTANT", "2020-01-01T00:00:00"),  # no offset: which instant?
        ("SLAWATCH_EARLIEST_INSTANT", "yesterday"),
        ("SLAWATCH_MAX_FUTURE_S", "-1"),
        ("SLAWATCH_MAX_FUTURE_S", "nan"),
        ("SLAWATCH_MAX_FUTURE_S", "inf"),
        ("SLAWATCH_MAX_FUTURE_S", "1e300"),  # past what a datetime can add
    ],
)
def test_an_impossible_window_is_invalid(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("SLAWATCH_").lower()):
        IngestSettings()


def test_the_limit_of_failed_authentication_comes_from_its_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PER_MINUTE", "BURST", "ADDRESSES"):
        monkeypatch.delenv(f"SLAWATCH_UNAUTH_{name}", raising=False)
    defaults = IngestSettings()
    monkeypatch.setenv("SLAWATCH_UNAUTH_PER_MINUTE", "6")
    monkeypatch.setenv("SLAWATCH_UNAUTH_BURST", "12")
    monkeypatch.setenv("SLAWATCH_UNAUTH_ADDRESSES", "500")
    settings = IngestSettings()
    assert (defaults.unauth_per_minute, defaults.unauth_burst, defaults.unauth_addresses) == (
        30.0,
        30,
        10_000,
    )
    assert (settings.unauth_per_minute, settings.unauth_burst, settings.unauth_addresses) == (
        6.0,
        12,
        500,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLAWATCH_UNAUTH_PER_MINUTE", "0"),
        ("SLAWATCH_UNAUTH_PER_MINUTE", "nan"),
        ("SLAWATCH_UNAUTH_BURST", "0"),
        ("SLAWATCH_UNAUTH_ADDRESSES", "0"),
    ],
)
def test_an_impossible_limit_of_failed_authentication_is_invalid(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("SLAWATCH_").lower()):
        IngestSettings()


def test_no_token_at_all_is_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLAWATCH_INGEST_TOKENS", " , ")
    with pytest.raises(ValidationError, match="ingest_tokens"):
        IngestSettings()


@pytest.mark.parametrize(
    ("presented", "accepted"),
    [("alpha", True), ("beta", True), ("alph", False), ("", False), ("ålpha", False)],
)
def test_token_accepted(presented: str, accepted: bool) -> None:
    assert token_accepted(presented, ("alpha", "beta")) is accepted
