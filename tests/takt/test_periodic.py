"""PeriodicDatabaseTask: rounds on a timer, spaced out when they grow long."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from takt.periodic import PeriodicDatabaseTask


class SlowRounds(PeriodicDatabaseTask):
    def __init__(self, database_url: str, round_s: float, **kwargs: Any) -> None:
        super().__init__("slow-rounds", database_url, 0.01, **kwargs)
        self.round_s = round_s
        self.starts: list[float] = []
        self.enough = threading.Event()

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        self.starts.append(time.monotonic())
        time.sleep(self.round_s)
        if len(self.starts) >= 4:
            self.enough.set()


def test_wait_is_the_interval_until_rounds_outgrow_the_share() -> None:
    task = SlowRounds("postgresql://unused", 0.0, max_share=0.2)
    assert task.next_wait_s() == pytest.approx(0.01)
    task.last_round_s = 0.5
    # 0.5 s of work is at most 20% of the time: 2 s of rest.
    assert task.next_wait_s() == pytest.approx(2.0)


def test_max_share_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="max_share"):
        SlowRounds("postgresql://unused", 0.0, max_share=0)


def test_long_rounds_are_spaced_out(fresh_database: str) -> None:
    task = SlowRounds(fresh_database, 0.05, max_share=0.25)
    task.start()
    try:
        assert task.enough.wait(10)
    finally:
        task.stop()
    gaps = [b - a for a, b in zip(task.starts, task.starts[1:], strict=False)]
    # Each round takes 0.05 s, then rests three times that (share 1/4),
    # far longer than the 0.01 s interval.
    assert min(gaps[:3]) >= 0.05 + 0.15 * 0.9
