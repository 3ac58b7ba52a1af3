from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from edge_agent.buffer import EventBuffer
from takt.contract import Event


def test_seq_is_assigned_in_order_and_persists_across_reopen(
    tmp_path: Path, events: Callable[[int], list[Event]]
) -> None:
    buf = EventBuffer(tmp_path / "b.sqlite")
    assert buf.append(events(3)) == [1, 2, 3]
    assert buf.delete_ranges([(1, 3)]) == 3
    buf.close()
    # Drained empty and reopened: seq must not restart (the cloud uses it to find gaps).
    buf = EventBuffer(tmp_path / "b.sqlite")
    assert buf.append(events(2)) == [4, 5]
    assert buf.stats().backlog == 2
    rows = buf.read_after(0, 10)
    assert [orjson.loads(p)["seq"] for _, p in rows] == [4, 5]


def test_delete_ranges_only_removes_named_seqs(tmp_path: Path, events: Callable[[int], list[Event]]) -> None:
    buf = EventBuffer(tmp_path / "b.sqlite")
    buf.append(events(10))
    assert buf.delete_ranges([(2, 4), (7, 7), (50, 60)]) == 4
    assert [s for s, _ in buf.read_after(0, 100)] == [1, 5, 6, 8, 9, 10]
    stats = buf.stats()
    assert stats.backlog == 6
    assert stats.bytes == sum(len(p) for _, p in buf.read_after(0, 100))


def test_drop_oldest_when_full_is_counted(tmp_path: Path, events: Callable[[int], list[Event]]) -> None:
    buf = EventBuffer(tmp_path / "b.sqlite", max_bytes=10_000)
    buf.append(events(100))
    stats = buf.stats()
    assert stats.bytes <= 10_000
    assert stats.dropped > 0
    assert stats.backlog + stats.dropped == 100
    remaining = [s for s, _ in buf.read_after(0, 1000)]
    # The oldest went first: what is left is the newest, contiguous to the end.
    assert remaining == list(range(100 - len(remaining) + 1, 101))
    buf.close()
    assert EventBuffer(tmp_path / "b.sqlite").stats().dropped == stats.dropped


def test_age_limit_drops_old_events(tmp_path: Path, events: Callable[[int], list[Event]]) -> None:
    buf = EventBuffer(tmp_path / "b.sqlite", max_age_s=3600)
    buf.append(events(5), now=1000.0)
    buf.append(events(5), now=9000.0)
    assert buf.enforce_limits(now=9100.0) == 5
    assert [s for s, _ in buf.read_after(0, 100)] == [6, 7, 8, 9, 10]
    assert buf.stats(now=9100.0).oldest_age_s == 100.0
    assert buf.stats().dropped == 5
