"""The timer's due index: order, exactness to the microsecond, partitions, compaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slawatch_engine.ledger import Changes
from slawatch_engine.timer import DueIndex, Timer

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def test_pops_due_clocks_earliest_first_and_never_early() -> None:
    index = DueIndex()
    index.set("b", 1, T0 + 2 * US)
    index.set("a", 0, T0)
    index.set("c", 2, T0 + timedelta(seconds=1))
    assert index.pop_due(T0 - US) == []
    assert index.pop_due(T0 + US) == ["a"]
    assert index.pop_due(T0 + US) == []
    assert index.pop_due(T0 + 2 * US) == ["b"]
    assert index.next_stamp() == (T0 + timedelta(seconds=1)).timestamp()
    assert len(index) == 1


def test_set_moves_a_clock_and_none_removes_it() -> None:
    index = DueIndex()
    index.set("a", 3, T0)
    index.set("a", 3, T0 + timedelta(minutes=5))
    assert index.pop_due(T0 + timedelta(minutes=1)) == []
    index.set("b", 4, T0)
    index.set("b", 4, None)
    assert index.pop_due(T0 + timedelta(hours=1)) == ["a"]
    assert index.next_stamp() is None
    assert len(index) == 0


def test_partition_is_kept_and_known_after_pop() -> None:
    index = DueIndex()
    index.set("a", 7, T0)
    assert index.partition_of("a", -1) == 7
    assert index.pop_due(T0) == ["a"]
    assert index.partition_of("a", -1) == 7
    assert index.partition_of("unknown", -1) == -1


def test_dropping_partitions_forgets_their_clocks() -> None:
    index = DueIndex()
    for n in range(10):
        index.set(f"c{n}", n % 3, T0 + n * US)
    index.drop_partitions([0, 2])
    assert index.pop_due(T0 + timedelta(seconds=1)) == ["c1", "c4", "c7"]


def test_limit_and_update_from_changes() -> None:
    index = DueIndex()
    changes = Changes(due={f"c{n}": (0, T0 + n * US) for n in range(5)})
    index.update(changes)
    assert index.pop_due(T0 + timedelta(seconds=1), limit=2) == ["c0", "c1"]
    assert index.pop_due(T0 + timedelta(seconds=1)) == ["c2", "c3", "c4"]


def test_many_moves_compact_the_heap_without_losing_a_clock() -> None:
    index = DueIndex()
    for step in range(50):
        for n in range(200):
            index.set(f"c{n}", 1, T0 + timedelta(seconds=step, microseconds=n))
    assert len(index) == 200
    assert len(index._heap) <= 2 * 200 + 1024
    popped = index.pop_due(T0 + timedelta(seconds=49, microseconds=199), limit=1000)
    assert popped == [f"c{n}" for n in range(200)]


def test_a_bulk_load_yields_to_what_was_set_while_it_ran() -> None:
    index = DueIndex()
    index.begin_load()
    index.set("moved", 1, T0 + timedelta(minutes=9))  # intake, after the load read its row
    index.set("gone", 1, None)  # stopped meanwhile
    added = index.load(
        [
            ("a", 0, _micros(T0 + 2 * US)),
            ("moved", 1, _micros(T0)),  # the stale row the load read
            ("gone", 1, _micros(T0)),
            ("b", 0, _micros(T0 + US)),
        ]
    )
    index.end_load()
    assert added == 2
    assert index.pop_due(T0 + timedelta(minutes=1)) == ["b", "a"]
    assert index.pop_due(T0 + timedelta(minutes=9)) == ["moved"]
    assert len(index) == 0


def _micros(moment: datetime) -> int:
    """µs since the epoch, as ``store.due_clocks`` gives a due instant."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // US


def test_the_timer_judges_no_later_than_the_input_has_been_read() -> None:
    now = T0 + timedelta(seconds=30)
    timer = Timer(None, None, DueIndex(), None, lambda _: None, lambda: now, None)  # type: ignore[arg-type]
    assert timer._horizon() == now  # caught up
    timer.follow(lambda: T0 + timedelta(seconds=10))
    assert timer._horizon() == T0 + timedelta(seconds=10)  # lagging: the input's time
    timer.follow(lambda: T0 + timedelta(minutes=5))
    assert timer._horizon() == now  # never later than now
