"""PeriodicDatabaseTask: rounds on a timer, spaced out when they grow long."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry, Counter

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


class Failing(PeriodicDatabaseTask):
    """Rounds that raise what ``errors`` yields, one per round, then succeed."""

    def __init__(self, database_url: str, errors: list[BaseException], counter: Counter) -> None:
        super().__init__("failing", database_url, 0.01, failure_counter=counter)
        self.errors = errors
        self.quarantined_after: list[type[BaseException]] = []
        self.done = threading.Event()

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT 1")
        if self.errors:
            raise self.errors.pop(0)
        self.done.set()

    def quarantine(self, conn: psycopg.Connection[Any], error: BaseException) -> int:
        conn.execute("SELECT 1")  # gets a working connection
        self.quarantined_after.append(type(error))
        return 1


def test_no_exception_ends_the_thread_and_poison_is_quarantined(fresh_database: str) -> None:
    errors: list[BaseException] = [
        OverflowError("date value out of range"),
        ValueError("a bug"),
        psycopg.errors.DatetimeFieldOverflow("timestamp out of range"),
        psycopg.errors.QueryCanceled("statement timeout"),
        KeyError("x"),
    ]
    counter = Counter("t_failures", "test", ["task"], registry=CollectorRegistry())
    task = Failing(fresh_database, errors, counter)
    task.start()
    try:
        assert task.done.wait(10), "the task stopped running rounds"
        assert task.alive
    finally:
        task.stop()
    assert task.failures == 5 and counter.labels("failing")._value.get() == 5
    # Data errors are quarantined; a cancelled query is not the data's fault.
    assert task.quarantined_after == [
        OverflowError,
        ValueError,
        psycopg.errors.DatetimeFieldOverflow,
        KeyError,
    ]
    assert task.quarantined == 4
