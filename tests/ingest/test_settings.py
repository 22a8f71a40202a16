"""IngestSettings read from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from slawatch_ingest.auth import token_accepted
from slawatch_ingest.settings import IngestSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "TOKENS"):
        monkeypatch.delenv(f"SLAWATCH_INGEST_{name}", raising=False)
    monkeypatch.delenv("SLAWATCH_PRODUCE_TIMEOUT_S", raising=False)
    monkeypatch.delenv("SLAWATCH_MAX_BODY_BYTES", raising=False)
    settings = IngestSettings()
    assert (settings.http_port, settings.ingest_tokens) == (8080, ("dev-token",))
    assert (settings.produce_timeout_s, settings.max_body_bytes) == (5.0, 5 * 1024 * 1024)


def test_port_and_tokens_come_from_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLAWATCH_INGEST_PORT", "9090")
    monkeypatch.setenv("SLAWATCH_HTTP_PORT", "1")  # not ingest's variable
    monkeypatch.setenv("SLAWATCH_INGEST_TOKENS", " alpha, beta ,,")
    settings = IngestSettings()
    assert (settings.http_port, settings.ingest_tokens) == (9090, ("alpha", "beta"))


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
