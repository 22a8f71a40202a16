"""Noise control as pure decisions (fake ``now``): rate windows and folding, digests,
quiet hours, fallback planning."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from notifier.factories import CONFIG, ESCALATING, NOW, sla_event
from slawatch_common.events import Channel
from slawatch_common.runtime import ConfigError
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.config import NotifierConfig, RateLimit, parse_config
from slawatch_notifier.digest import Held, Limit, fit, render_digest, stage_label
from slawatch_notifier.escalation import ChainSnapshot, Firing
from slawatch_notifier.planner import Planner
from slawatch_notifier.quiet_hours import QuietHours, deferral, quiet_until
from slawatch_notifier.rate_limits import Fold, Send, Window, admit, closed, digest_id, limit_for
from slawatch_notifier.routing import Route, plan
from slawatch_notifier.targets import SkipReason
from slawatch_notifier.templates import SMS_MAX_CHARS

SMS_LIMIT = RateLimit(max=5, per=60)
ONCALL = "oncall"

# --- rate windows -------------------------------------------------------------------


def _run(
    moments: list[datetime], limit: RateLimit = SMS_LIMIT, window: Window | None = None
) -> tuple[list[Send | Fold], Window | None]:
    """Admit one notification at each moment, in order; the decisions and the last window."""
    decisions: list[Send | Fold] = []
    for moment in moments:
        decision = admit(window, limit, ONCALL, Channel.SMS, moment)
        decisions.append(decision)
        window = decision.window
    return decisions, window


def test_the_first_max_in_a_window_are_sent_and_the_rest_fold_into_one_digest() -> None:
    moments = [NOW + timedelta(seconds=second) for second in range(8)]
    decisions, window = _run(moments)
    assert [type(d) for d in decisions] == [Send] * 5 + [Fold] * 3
    folds = [d for d in decisions if isinstance(d, Fold)]
    expected = "digest:oncall:sms:20261126T041500.000000Z"
    assert {fold.digest_id for fold in folds} == {expected} == {digest_id(ONCALL, "sms", NOW)}
    assert [fold.opened for fold in folds] == [True, False, False]
    assert window == Window(NOW, NOW + timedelta(minutes=1), 5, sent=5, held=3, digest_id=expected)


def test_a_window_with_a_digest_is_followed_at_its_end_by_one_that_counts_the_digest() -> None:
    _, full = _run([NOW] * 6)
    assert full is not None
    end = NOW + timedelta(minutes=1)
    decisions, window = _run([end + timedelta(seconds=s) for s in range(5)], window=full)
    # the digest went out at `end` and is the new window's first message: 4 more fit
    assert [type(d) for d in decisions] == [Send] * 4 + [Fold]
    assert window is not None
    assert (window.started_at, window.ends_at, window.sent) == (end, end + timedelta(minutes=1), 5)
    assert window.digest_id == digest_id(ONCALL, Channel.SMS, end)


def test_a_window_without_a_digest_is_followed_by_a_fresh_one_at_the_next_message() -> None:
    _, quiet = _run([NOW] * 3)
    later = NOW + timedelta(seconds=90)
    (decision,), window = _run([later], window=quiet)
    assert isinstance(decision, Send)
    assert window == Window(later, later + timedelta(minutes=1), 5, sent=1)


def test_long_after_a_digest_the_next_window_is_fresh() -> None:
    _, full = _run([NOW] * 6)
    much_later = NOW + timedelta(minutes=5)
    (decision,), window = _run([much_later], window=full)
    assert isinstance(decision, Send)
    assert window == Window(much_later, much_later + timedelta(minutes=1), 5, sent=1)


def test_a_changed_limit_applies_from_the_next_window() -> None:
    _, open_window = _run([NOW] * 2)
    decisions, _ = _run([NOW + timedelta(seconds=1)] * 4, RateLimit(max=100, per=60), open_window)
    assert [type(d) for d in decisions] == [Send, Send, Send, Fold]  # still 5 in this window


def test_a_digest_that_left_early_closes_its_window() -> None:
    _, full = _run([NOW] * 6)
    assert full is not None
    moment = NOW + timedelta(seconds=30)
    decision = admit(closed(full, moment), SMS_LIMIT, ONCALL, Channel.SMS, moment)
    assert isinstance(decision, Send)
    assert (decision.window.started_at, decision.window.sent) == (moment, 2)


def test_a_persons_own_limit_replaces_the_channels() -> None:
    section = copy.deepcopy(CONFIG)
    section["rate_limits"] = {"sms": {"max": 5, "per": "15m"}, "email": {"max": 20, "per": "1h"}}
    section["people"]["oncall"]["rate_limits"] = {"sms": {"max": 2, "per": "1m"}}
    config = parse_config(section)
    assert limit_for(config, ONCALL, Channel.SMS) == RateLimit(max=2, per=60)
    assert limit_for(config, ONCALL, Channel.EMAIL) == RateLimit(max=20, per=3600)
    assert limit_for(config, "supervisor", Channel.SMS) == RateLimit(max=5, per=900)
    assert limit_for(config, "li.wei", Channel.DINGTALK) is None


def test_rate_limit_errors_name_their_path() -> None:
    section = copy.deepcopy(CONFIG)
    section["rate_limits"] = {"sms": {"max": 0, "per": "15m"}, "pager": {"max": 1, "per": "1m"}}
    section["people"]["oncall"]["rate_limits"] = {"sms": {"max": 2, "per": "soon"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(section)
    message = str(caught.value)
    assert "notifier.rate_limits.sms.max:" in message
    assert "notifier.rate_limits.pager" in message
    assert "notifier.people.oncall.rate_limits.sms.per:" in message


# --- digests --------------------------------------------------------------------------


def _held(count: int) -> list[Held]:
    base = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
    return [
        Held(
            f"jira:OPS-{n}",
            "breach" if n % 3 == 0 else "warning:75",
            base + timedelta(minutes=(count - n)),
            "P2" if n % 2 else "P1",
        )
        for n in range(count)
    ]


def test_an_sms_digest_fits_and_names_the_most_urgent_first() -> None:
    content = render_digest(_held(40), Channel.SMS, Limit(5, 900))
    assert len(content.text) <= SMS_MAX_CHARS
    assert content.text.startswith("[slawatch] 40 SLA notifications held back (limit 5 per 15m")
    first = content.text.split(": ", 1)[1]
    assert first.startswith("BREACH P2 jira:OPS-39 deadline 11-26 04:01Z;")  # breach, soonest
    shown = content.text.count("jira:OPS-")
    assert content.text.endswith(f" and {40 - shown} more.")
    assert content.subject == "[slawatch] 40 SLA notifications held back (14 breaches)"


def test_a_small_sms_digest_lists_every_notification() -> None:
    content = render_digest(_held(3), Channel.SMS, Limit(5, 60))
    assert "more" not in content.text
    assert sorted(content.text.count(f"jira:OPS-{n} ") for n in range(3)) == [1, 1, 1]
    assert content.text.endswith("Z.")


def test_a_digest_ends_with_its_link_and_shortens_its_lines_for_it_never_the_link() -> None:
    url = "https://slawatch.example.com/v1/acks/" + "x" * 150
    sms = render_digest(_held(40), Channel.SMS, Limit(5, 900), ack_url=url)
    assert len(sms.text) <= SMS_MAX_CHARS
    assert sms.text.endswith(f" Ack: {url}")
    shown = sms.text.count("jira:OPS-")
    assert 0 < shown < render_digest(_held(40), Channel.SMS, Limit(5, 900)).text.count("jira:")
    assert f" and {40 - shown} more. Ack: " in sms.text
    chat = render_digest(_held(3), Channel.DINGTALK, Limit(5, 60), ack_url=url)
    assert chat.text.count("jira:OPS-") == 3
    assert chat.text.endswith(f"Z. Ack: {url}")
    mail = render_digest(_held(3), Channel.EMAIL, Limit(5, 60), "Li Wei", ack_url=url)
    assert f"Acknowledge them all (stops their escalations):\n{url}\n" in mail.text
    assert mail.html is not None
    assert f'<a href="{url}">Acknowledge them all (stops their escalations)</a>' in mail.html


def test_an_email_digest_lists_everything_one_line_each() -> None:
    content = render_digest(_held(40), Channel.EMAIL, Limit(30, 900), "Li Wei")
    lines = [line for line in content.text.splitlines() if line.startswith("- ")]
    assert len(lines) == 40
    assert lines[:2] == [
        "- BREACH P2 jira:OPS-39 deadline 2026-11-26 04:01:00 UTC",
        "- BREACH P1 jira:OPS-36 deadline 2026-11-26 04:04:00 UTC",
    ]
    assert content.text.startswith("Hello Li Wei,")
    assert content.html is not None
    assert content.html.count("<li>") == 40


def test_fit_keeps_the_count_when_nothing_else_fits() -> None:
    assert fit("head:", ["x" * 50, "y"], 20) == "head: and 2 more."
    assert fit("head:", ["a", "b"], 100) == "head: a; b."
    assert stage_label("warning:900s-before") == "WARNING 15m left"
    assert stage_label("warning:90") == "WARNING 90%"


# --- quiet hours ------------------------------------------------------------------------


def _quiet(starts: str, ends: str, zone: str = "Asia/Shanghai") -> QuietHours:
    return QuietHours.model_validate({"from": starts, "to": ends, "time_zone": zone})


def _shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall time (UTC+8, no DST) as a UTC instant."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


@pytest.mark.parametrize(
    ("local", "until"),
    [
        ((26, 21, 59), None),
        ((26, 22, 0), (27, 7, 0)),  # the evening part ends tomorrow morning
        ((26, 23, 30), (27, 7, 0)),
        ((27, 0, 0), (27, 7, 0)),  # after midnight: this morning
        ((27, 6, 59), (27, 7, 0)),
        ((27, 7, 0), None),  # "to" is not quiet any more
        ((27, 12, 0), None),
    ],
)
def test_an_overnight_quiet_period(
    local: tuple[int, int, int], until: tuple[int, int, int] | None
) -> None:
    quiet = _quiet("22:00", "07:00")
    expected = _shanghai(*until) if until else None
    assert quiet_until(quiet, _shanghai(*local)) == expected


def test_a_quiet_period_within_one_day() -> None:
    quiet = _quiet("12:00", "13:30")
    assert quiet_until(quiet, _shanghai(26, 11, 59)) is None
    assert quiet_until(quiet, _shanghai(26, 12, 0)) == _shanghai(26, 13, 30)
    assert quiet_until(quiet, _shanghai(26, 13, 30)) is None


def test_quiet_hours_end_at_the_gap_end_on_a_spring_forward_night() -> None:
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; "to: 02:30" does not exist that night
    quiet = _quiet("22:00", "02:30", "Europe/Berlin")
    evening = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # 23:00 CET
    assert quiet_until(quiet, evening) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST


def test_only_warnings_wait_for_the_end_of_quiet_hours() -> None:
    quiet = _quiet("22:00", "07:00")
    night = _shanghai(26, 23)
    assert deferral("warning:75", quiet, night) == _shanghai(27, 7)
    assert deferral("warning:900s-before", quiet, night) == _shanghai(27, 7)
    assert deferral("breach", quiet, night) is None
    assert deferral("warning:75", None, night) is None


def test_quiet_hours_are_validated_by_path() -> None:
    section = copy.deepcopy(CONFIG)
    section["quiet_hours"] = {"from": "22:00", "to": "22:00", "time_zone": "Asia/Shanghai"}
    section["people"]["oncall"]["quiet_hours"] = {"from": 1320, "to": "07:00", "time_zone": "Mars"}
    with pytest.raises(ConfigError) as caught:
        parse_config(section)
    message = str(caught.value)
    assert "notifier.quiet_hours: Value error, 'from' and 'to' are equal" in message
    assert "notifier.people.oncall.quiet_hours.from:" in message
    assert 'quoted string like "09:00"' in message
    assert "notifier.people.oncall.quiet_hours.time_zone:" in message


def test_the_planner_defers_warnings_to_people_in_quiet_hours() -> None:
    section = copy.deepcopy(ESCALATING)
    section["quiet_hours"] = {"from": "00:00", "to": "23:59", "time_zone": "UTC"}  # NOW is 04:15
    section["people"]["zhao.lei"]["quiet_hours"] = {
        "from": "04:00",
        "to": "04:30",
        "time_zone": "UTC",
    }
    planner = Planner(parse_config(section), AckLinks(b"k", "http://n", timedelta(hours=1)))
    chain = ChainSnapshot(name="adhoc", steps=parse_config(_warn_everyone()).escalations["all"])
    event = sla_event("warning:75", group="l2")
    drafts = planner.drafts([Firing(0, "warning:75")], chain, event, NOW).drafts
    deferred = {d.planned.recipient: d.deferred_until for d in drafts}
    assert deferred == {
        "li.wei": NOW.replace(hour=23, minute=59),  # the default
        "zhao.lei": NOW.replace(minute=30),  # her own
        "group:l2": None,  # a robot has no quiet hours
    }
    breach = planner.drafts([Firing(1, "breach")], chain, sla_event("breach"), NOW).drafts
    assert {d.deferred_until for d in breach} == {None}


def _warn_everyone() -> dict[str, Any]:
    section = copy.deepcopy(ESCALATING)
    section["escalations"] = {
        "all": [
            {
                "on": "warning",
                "notify": [
                    {"to": "assignee", "via": "email"},
                    {"to": "zhao.lei", "via": "email"},
                    {"to": "group:l2", "via": "dingtalk"},
                ],
            },
            {"on": "breach", "notify": [{"to": "zhao.lei", "via": "sms"}]},
        ]
    }
    return section


# --- fallback planning -------------------------------------------------------------------


@pytest.fixture
def lines() -> NotifierConfig:
    return parse_config(ESCALATING)


def _reach(config: NotifierConfig, notify: list[dict[str, Any]]) -> Route:
    chain = ChainSnapshot.model_validate(
        {"name": "adhoc", "steps": [{"on": "breach", "notify": notify}]}
    )
    return plan([Firing(0, "breach")], chain, sla_event("breach"), config, NOW)


def _chain(route: Route) -> list[tuple[str, str, str | None]]:
    return [(p.recipient, p.channel, p.fallback_of) for p in route.notifications]


KEY = "jira:OPS-42:response:breach:0"


def test_later_channels_stand_by_for_the_one_before(lines: NotifierConfig) -> None:
    planned = _reach(lines, [{"to": "zhao.lei", "via": ["sms", "email"]}])
    assert _chain(planned) == [
        ("zhao.lei", "sms", None),
        ("zhao.lei", "email", f"{KEY}:zhao.lei:sms"),
    ]
    assert planned.skipped == ()


def test_without_an_address_for_the_first_channel_the_next_one_is_used_at_once(
    lines: NotifierConfig,
) -> None:
    # li.wei has no phone: email straight away, and no skip (she is reached)
    planned = _reach(lines, [{"to": "assignee", "via": ["sms", "email"]}])
    assert _chain(planned) == [("li.wei", "email", None)]
    assert planned.skipped == ()
    nowhere = _reach(lines, [{"to": "assignee", "via": ["sms", "dingtalk"]}])
    assert nowhere.notifications == ()
    assert [skip.reason for skip in nowhere.skipped] == [SkipReason.NO_ADDRESS]


def test_a_direct_notification_wins_over_the_same_one_as_a_fallback(
    lines: NotifierConfig,
) -> None:
    planned = _reach(
        lines,
        [{"to": "zhao.lei", "via": ["sms", "email"]}, {"to": "zhao.lei", "via": "email"}],
    )
    assert _chain(planned) == [("zhao.lei", "sms", None), ("zhao.lei", "email", None)]


def test_a_group_falls_back_member_by_member(lines: NotifierConfig) -> None:
    planned = _reach(lines, [{"to": "group:l2", "via": ["sms", "email"]}])
    assert _chain(planned) == [
        ("zhao.lei", "sms", None),
        ("chen.jie", "sms", None),
        ("zhao.lei", "email", f"{KEY}:zhao.lei:sms"),
        ("chen.jie", "email", f"{KEY}:chen.jie:sms"),
    ]


def test_fallback_lists_are_validated_by_path() -> None:
    section = copy.deepcopy(ESCALATING)
    section["people"]["wang.fang"].pop("phone")
    section["escalations"]["tiered"][1]["notify"] = [
        {"to": "group:l2", "via": ["dingtalk", "email"]},
        {"to": "wang.fang", "via": ["email", "sms"]},
        {"to": "nobody", "via": ["sms", "email"]},
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config(section)
    message = str(caught.value)
    path = "notifier.escalations.tiered.1.notify"
    assert f"{path}.0.via: a group's fallback channels are all member channels" in message
    assert f"{path}.1.via.1: 'wang.fang' has no phone, which sms needs" in message
    assert message.count(f"{path}.2.to: unknown person 'nobody'") == 1
    section["escalations"]["tiered"][1]["notify"] = [{"to": "zhao.lei", "via": ["sms", "sms"]}]
    with pytest.raises(ConfigError) as repeated:
        parse_config(section)
    assert f"{path}.0.via: Value error, sms named twice" in str(repeated.value)


def test_a_single_channel_and_a_list_of_one_are_the_same() -> None:
    single = parse_config(CONFIG).escalations["standard"][1].notify[0]
    assert single.via == (Channel.SMS,)
    snapshot = ChainSnapshot(name="s", steps=parse_config(CONFIG).escalations["standard"])
    assert ChainSnapshot.model_validate(snapshot.as_json()) == snapshot
    legacy = {"name": "s", "steps": [{"on": "breach", "notify": [{"to": "x", "via": "sms"}]}]}
    assert ChainSnapshot.model_validate(legacy).steps[0].notify[0].via == (Channel.SMS,)


def test_local_times_are_wall_times() -> None:
    assert _quiet("22:00", "07:00").starts == time(22, 0)
