"""Store and forward: every event is committed to SQLite (WAL) before it may be published.

Rows leave only when the collector's commit ack names their seq, or when the
size/age policy drops the oldest ones (counted, reported in status, logged).
``seq`` is assigned here, in the same transaction as the insert, from a
persisted counter, so it keeps increasing across restarts even when the
buffer has been drained empty.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from takt.contract import Event, encode_event

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('next_seq', 1), ('dropped', 0);
"""


@dataclass(frozen=True, slots=True)
class BufferStats:
    backlog: int
    bytes: int
    oldest_age_s: float | None
    dropped: int
    last_seq: int


class EventBuffer:
    """Thread-safe; the agent appends while the publisher reads and deletes."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        max_age_s: float | None = None,
        synchronous: str = "FULL",
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL fsyncs the WAL on every commit: an event acknowledged to the
        # pipeline survives power loss, which is the point of this buffer.
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events"
        ).fetchone()
        self._count = int(count)
        self._bytes = int(size)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing --------------------------------------------------------------------
    def append(self, events: Sequence[Event], now: float | None = None) -> list[int]:
        """Assign seqs, encode and commit; returns the seqs. Enforces the size policy afterwards."""
        if not events:
            return []
        created = time.time() if now is None else now
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                (first,) = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
                rows = []
                added = 0
                for offset, event in enumerate(events):
                    payload = encode_event(event.model_copy(update={"seq": first + offset}))
                    added += len(payload)
                    rows.append((first + offset, created, payload))
                db.executemany("INSERT INTO events (seq, created, payload) VALUES (?, ?, ?)", rows)
                db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (first + len(rows),))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._count += len(rows)
            self._bytes += added
            self._enforce_size_locked()
        return [r[0] for r in rows]

    def enforce_limits(self, now: float | None = None) -> int:
        """Drop what exceeds the size or age limit, oldest first; returns how many were dropped."""
        with self._lock:
            dropped = self._enforce_size_locked()
            if self.max_age_s is not None:
                cutoff = (time.time() if now is None else now) - self.max_age_s
                dropped += self._drop_locked(
                    "SELECT seq, LENGTH(payload) FROM events WHERE created < ? ORDER BY seq LIMIT 100000",
                    (cutoff,),
                    "older than the age limit",
                )
            return dropped

    def _enforce_size_locked(self) -> int:
        if self._bytes <= self.max_bytes:
            return 0
        excess = self._bytes - self.max_bytes
        cursor = self._db.execute("SELECT seq, LENGTH(payload) FROM events ORDER BY seq")
        last, freed = None, 0
        for seq, size in cursor:
            last, freed = seq, freed + size
            if freed >= excess:
                break
        cursor.close()
        if last is None:
            return 0
        return self._drop_locked(
            "SELECT seq, LENGTH(payload) FROM events WHERE seq <= ?", (last,), "over the size limit"
        )

    def _drop_locked(self, select: str, args: tuple[float | int, ...], why: str) -> int:
        rows = self._db.execute(select, args).fetchall()
        if not rows:
            return 0
        last = max(r[0] for r in rows)
        size = sum(r[1] for r in rows)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            deleted = db.execute("DELETE FROM events WHERE seq <= ?", (last,)).rowcount
            db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (deleted,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._count -= deleted
        self._bytes -= size
        logger.warning("buffer full: dropped the %d oldest events (%s), up to seq %d", deleted, why, last)
        return int(deleted)

    def delete_ranges(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Remove acknowledged events (inclusive seq ranges) in one transaction."""
        ranges = list(ranges)
        if not ranges:
            return 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            deleted = size = 0
            try:
                for first, last in ranges:
                    (n, s) = db.execute(
                        "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM events "
                        "WHERE seq BETWEEN ? AND ?",
                        (first, last),
                    ).fetchone()
                    if n:
                        db.execute("DELETE FROM events WHERE seq BETWEEN ? AND ?", (first, last))
                        deleted += n
                        size += s
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._count -= deleted
            self._bytes -= size
            return deleted

    # -- reading --------------------------------------------------------------------
    def read_after(self, after_seq: int, limit: int, upto_seq: int | None = None) -> list[tuple[int, bytes]]:
        with self._lock:
            if upto_seq is None:
                rows = self._db.execute(
                    "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT seq, payload FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (after_seq, upto_seq, limit),
                ).fetchall()
        return [(int(s), bytes(p)) for s, p in rows]

    def read_range(self, first: int, last: int) -> list[tuple[int, bytes]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)
            ).fetchall()
        return [(int(s), bytes(p)) for s, p in rows]

    def max_seq(self) -> int:
        with self._lock:
            (value,) = self._db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        return int(value) - 1

    def stats(self, now: float | None = None) -> BufferStats:
        with self._lock:
            oldest = self._db.execute("SELECT created FROM events ORDER BY seq LIMIT 1").fetchone()
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        age = None if oldest is None else max(0.0, (time.time() if now is None else now) - oldest[0])
        return BufferStats(
            backlog=self._count,
            bytes=self._bytes,
            oldest_age_s=age,
            dropped=int(meta["dropped"]),
            last_seq=int(meta["next_seq"]) - 1,
        )
