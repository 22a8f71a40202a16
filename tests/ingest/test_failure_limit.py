"""The limit of failed authentication per client address: pure, over a fake monotonic clock."""

from __future__ import annotations

import pytest

from slawatch_ingest.ratelimit import UNKNOWN_ADDRESS, FailureLimit, address_key
from slawatch_ingest.settings import IngestSettings


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Monotonic:
    return Monotonic()


def test_an_address_may_fail_a_burst_then_waits_for_the_refill(clock: Monotonic) -> None:
    limit = FailureLimit(per_second=0.5, burst=3, max_addresses=10, monotonic=clock)

    for _ in range(3):
        assert limit.wait("10.0.0.1") == 0.0
        limit.charge("10.0.0.1")

    assert limit.wait("10.0.0.1") == pytest.approx(2.0)
    assert limit.wait("10.0.0.2") == 0.0  # another address is not held back
    clock.now += 1.0
    assert limit.wait("10.0.0.1") == pytest.approx(1.0)
    clock.now += 1.0
    assert limit.wait("10.0.0.1") == 0.0


def test_only_failing_addresses_are_held_and_a_refilled_one_is_forgotten(
    clock: Monotonic,
) -> None:
    limit = FailureLimit(per_second=1.0, burst=2, max_addresses=10, monotonic=clock)
    assert limit.wait("10.0.0.1") == 0.0
    assert limit.held == 0

    limit.charge("10.0.0.1")
    assert limit.held == 1
    clock.now += 1.0
    assert limit.wait("10.0.0.1") == 0.0
    assert limit.held == 0


def test_at_most_max_addresses_are_held_the_least_recent_forgotten(clock: Monotonic) -> None:
    limit = FailureLimit(per_second=0.001, burst=1, max_addresses=3, monotonic=clock)
    for n in range(1, 4):
        limit.charge(f"10.0.0.{n}")
    limit.charge("10.0.0.1")  # seen again: the most recent now

    limit.charge("10.0.0.4")

    assert limit.held == 3
    assert limit.wait("10.0.0.2") == 0.0  # forgotten
    assert [limit.wait(f"10.0.0.{n}") > 0 for n in (1, 3, 4)] == [True, True, True]


def test_failures_past_the_burst_do_not_go_below_empty(clock: Monotonic) -> None:
    """Requests admitted together may all fail: the bucket stays at empty, not below."""
    limit = FailureLimit(per_second=1.0, burst=2, max_addresses=10, monotonic=clock)
    for _ in range(10):
        limit.charge("10.0.0.1")
    assert limit.wait("10.0.0.1") == pytest.approx(1.0)


def test_take_spends_a_token_while_one_is_left_else_says_how_long_to_wait(
    clock: Monotonic,
) -> None:
    limit = FailureLimit(per_second=0.5, burst=2, max_addresses=10, monotonic=clock)

    assert [limit.take("10.0.0.1") for _ in range(2)] == [0.0, 0.0]
    assert limit.take("10.0.0.1") == pytest.approx(2.0)
    assert limit.take("10.0.0.1") == pytest.approx(2.0)  # a refusal takes nothing
    clock.now += 2.0
    assert limit.take("10.0.0.1") == 0.0


def test_a_refund_gives_back_what_take_took_and_a_full_bucket_is_forgotten(
    clock: Monotonic,
) -> None:
    """A body read on a token, whose signature then verified, costs the address nothing."""
    limit = FailureLimit(per_second=0.001, burst=2, max_addresses=10, monotonic=clock)
    limit.take("10.0.0.1")
    limit.take("10.0.0.1")
    assert limit.wait("10.0.0.1") > 0

    limit.refund("10.0.0.1")
    assert limit.wait("10.0.0.1") == 0.0
    assert limit.held == 1
    limit.refund("10.0.0.1")
    assert limit.held == 0  # full again: forgotten


def test_a_refund_never_fills_a_bucket_past_its_burst_nor_holds_a_new_address(
    clock: Monotonic,
) -> None:
    limit = FailureLimit(per_second=1.0, burst=3, max_addresses=10, monotonic=clock)
    limit.refund("10.0.0.9")
    assert limit.held == 0

    limit.take("10.0.0.1")
    clock.now += 5.0  # refilled meanwhile
    limit.refund("10.0.0.1")
    assert limit.held == 0
    for _ in range(3):
        limit.take("10.0.0.1")
    assert limit.take("10.0.0.1") > 0  # three, not four


def test_concurrent_takes_hold_an_address_to_its_burst(clock: Monotonic) -> None:
    """Takes are granted up front, before any body is read: however many arrive together,
    at most the burst are granted until refunds or the refill give tokens back."""
    limit = FailureLimit(per_second=0.001, burst=3, max_addresses=10, monotonic=clock)
    granted = [limit.take("10.0.0.1") == 0.0 for _ in range(50)]
    assert granted.count(True) == 3
    limit.refund("10.0.0.1")
    assert limit.take("10.0.0.1") == 0.0
    assert limit.take("10.0.0.1") > 0


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not:an:address", "not:an:address"),
        ("", UNKNOWN_ADDRESS),
        (None, UNKNOWN_ADDRESS),
    ],
)
def test_an_ipv6_address_counts_by_its_64_network(host: str | None, key: str) -> None:
    assert address_key(host) == key


def test_hosts_of_one_ipv6_network_share_a_bucket(clock: Monotonic) -> None:
    limit = FailureLimit(per_second=0.01, burst=1, max_addresses=10, monotonic=clock)
    limit.charge("2001:db8::1")
    assert limit.wait("2001:db8::2") > 0
    assert limit.wait("2001:db8:0:1::1") == 0.0


def test_the_limit_comes_from_the_settings(clock: Monotonic) -> None:
    settings = IngestSettings(unauth_per_minute=6, unauth_burst=2, unauth_addresses=5)
    limit = FailureLimit.of(settings, clock)
    limit.charge("10.0.0.1")
    limit.charge("10.0.0.1")
    assert limit.wait("10.0.0.1") == pytest.approx(10.0)
