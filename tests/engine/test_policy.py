"""Policy files: validation with exact error places, and first-match selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from slawatch_common.durations import parse_duration
from slawatch_common.events import Metric, Priority, Ticket
from slawatch_common.runtime import ConfigError
from slawatch_engine.main import main
from slawatch_engine.policy import load_policies

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config" / "slawatch.yaml"

VALID = """
calendars:
  always: {timezone: UTC, always_open: true}
policies:
  - name: vip
    match: {customer: [acme]}
    calendar: always
    targets: {P1: {response: 5m, resolution: 1h}}
  - name: default
    calendar: always
    warn_at: [80]
    targets: {P1: {response: 15m}, P3: {response: 2h, resolution: 1d}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("4h", 14400), ("1h30m", 5400), ("2d", 172800), (42, 42)],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "15", "m15", "1.5h", -1, True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_the_example_configuration_is_valid() -> None:
    book = load_policies(EXAMPLE)
    assert set(book.calendars) == {"always", "cn-office"}


def test_first_matching_policy_wins(tmp_path: Path) -> None:
    book = load_policies(write(tmp_path, VALID))
    vip = book.select(Ticket(id="1", customer="acme"), Priority.P1)
    other = book.select(Ticket(id="2", customer="globex"), Priority.P1)
    assert (vip and vip.name, other and other.name) == ("vip", "default")
    assert other is not None
    assert other.target(Priority.P3, Metric.RESOLUTION) == 86400
    assert other.target(Priority.P1, Metric.RESOLUTION) is None
    assert other.stages == ("warning:80",)


@pytest.mark.parametrize(
    ("text", "place"),
    [
        (VALID.replace("calendar: always\n    warn", "calendar: nowhere\n    warn"), "calendar"),
        (VALID.replace("response: 5m", "response: soon"), "policies.0.targets.P1.response"),
        (VALID.replace("P3:", "P9:"), "policies.1.targets.P9"),
        (VALID.replace("timezone: UTC", "timezone: Mars/Olympus"), "calendars.always"),
        (VALID.replace("warn_at: [80]", "warn_at: [120]"), "policies.1.warn_at.0"),
        ("policies: []\ncalendars: {}", "policies"),
    ],
)
def test_errors_name_their_place(tmp_path: Path, text: str, place: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policies(write(tmp_path, text))
    assert place in str(caught.value)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    bad = write(tmp_path, VALID.replace("response: 5m", "response: soon"))
    assert main(["check-config", str(bad)]) == 1
    assert "policies.0.targets.P1.response" in capsys.readouterr().err


RICH = """
calendars:
  office:
    timezone: Asia/Shanghai
    weekly: {mon: [["09:00", "18:00"]], tue: [["09:00", "18:00"]]}
priority_matrix:
  high: {high: P1, low: P2}
  low: {high: P3, low: P4}
policies:
  - name: rich
    calendar: office
    warn_at: [50, "15m before", "1h before"]
    pause_statuses: [pending_customer]
    pause: {response: []}
    stops: {resolution: [ticket.closed]}
    reopen: restart
    targets:
      P1: {response: 30m, resolution: {working_days: 2, at: end_of_day}, update: 2h}
"""


def test_warnings_updates_matrix_pauses_stops_and_reopen(tmp_path: Path) -> None:
    book = load_policies(write(tmp_path, RICH))
    policy = book.named("rich")
    assert policy is not None
    assert policy.stages == ("warning:50", "warning:900s-before", "warning:3600s-before")
    assert book.priority(Ticket(id="1", urgency="high", impact="low"), None) is Priority.P2
    assert book.priority(Ticket(id="1", urgency="odd", impact="low"), Priority.P4) is Priority.P4
    assert book.priority(Ticket(id="1", priority=Priority.P5, urgency="high"), None) is Priority.P5
    assert (
        policy.pauses(Metric.RESPONSE, "pending_customer"),
        policy.pauses(Metric.UPDATE, "pending_customer"),
    ) == (False, True)
    assert policy.stopped_by(Metric.RESOLUTION, "ticket.closed")
    assert not policy.stopped_by(Metric.RESOLUTION, "ticket.resolved")
    assert policy.stopped_by(Metric.RESPONSE, "ticket.resolved")  # the default
    assert policy.reopen == "restart"
    assert policy.target(Priority.P1, Metric.UPDATE) == 7200


@pytest.mark.parametrize("bad", ["[120]", '["soon before"]', '["15m after"]', '["0s before"]'])
def test_bad_warnings_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="warn_at"):
        load_policies(write(tmp_path, RICH.replace('[50, "15m before", "1h before"]', bad)))
