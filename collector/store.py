"""Idempotent event storage, shared by the MQTT collector and HTTP ingestion.

Functions here run inside the caller's transaction, so a collector commits a
batch's events, dead letters and sequence audit together, and only then
acknowledges. ``event_id`` (with ``ts``) is the key: writing an event twice
stores it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg

from takt.contract import Event, seq_ranges

EVENT_COLUMNS = (
    "event_id",
    "ts",
    "worker_id",
    "station_id",
    "event_type",
    "confidence",
    "count",
    "duration_s",
    "effective_duration_s",
    "model_version",
    "camera_id",
    "site_id",
    "gateway_id",
    "seq",
    "config_version",
    "shadow",
)
_COLUMN_TYPES = (
    "uuid",
    "timestamptz",
    "text",
    "text",
    "text",
    "double precision",
    "integer",
    "double precision",
    "double precision",
    "text",
    "text",
    "text",
    "text",
    "bigint",
    "text",
    "boolean",
)
_COLUMNS_SQL = ", ".join(EVENT_COLUMNS)


class WriteMethod(StrEnum):
    # COPY into a staging table, then one INSERT ... ON CONFLICT: the fastest.
    COPY = "copy"
    # One INSERT ... SELECT FROM unnest(arrays): for engines without COPY
    # (the PGlite TimescaleDB build used to test the Timescale SQL).
    UNNEST = "unnest"


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: str
    reason: str
    payload: bytes
    topic: str | None = None
    gateway_id: str | None = None
    event_index: int | None = None
    seq: int | None = None


def _row(event: Event) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.timestamp,
        event.worker_id,
        event.station_id,
        event.event_type.value,
        event.confidence,
        event.count,
        event.duration_s,
        event.duration_s if event.is_state else None,
        event.model_version,
        event.camera_id,
        event.site_id,
        event.gateway_id,
        event.seq,
        event.config_version,
        event.shadow,
    )


_NULL = "\\N"


def _label(value: str | None) -> str:
    """COPY text of a free-text label.

    The contract's Label type already excludes control characters (tab and
    newline included), so a backslash is the only character left to escape.
    Ids (EntityId, TopicId) cannot contain any of them and are written as is.
    """
    if value is None:
        return _NULL
    return value.replace("\\", "\\\\") if "\\" in value else value


def _copy_line(event: Event) -> str:
    """One COPY text line, the same values as :func:`_row`, built without psycopg's per-value dumpers."""
    duration = _NULL if event.duration_s is None else repr(event.duration_s)
    return "\t".join(
        (
            event.event_id.hex,  # 32 hex digits: PostgreSQL's uuid input accepts them, 2x faster than str()
            event.timestamp.isoformat(),
            event.worker_id,
            event.station_id,
            event.event_type,  # a StrEnum: a str already
            repr(event.confidence),
            str(event.count),
            duration,
            duration if event.is_state else _NULL,
            _label(event.model_version),
            event.camera_id or _NULL,
            event.site_id or _NULL,
            event.gateway_id or _NULL,
            _NULL if event.seq is None else str(event.seq),
            _label(event.config_version),
            "t" if event.shadow else "f",
        )
    )


# Storing a batch also feeds four things: the invalidation log (derived
# durations and rollups), auto-registration of unknown workers and stations
# (kept, flagged registered=false, never rejected), and the mirror of deployed
# model versions (cv_models: which version, since when, on which gateways).
# From the batch's aggregates (Registration), whichever way its rows went in.
# The model inserts are DO NOTHING, so a known version costs one index probe
# and takes no row lock that concurrent collectors could wait on; sorted so
# two collectors meeting two new versions insert them in one order.
_REGISTER = """
WITH spans AS (
    SELECT * FROM unnest(%(workers)s::text[], %(stations)s::text[], %(min_ts)s::timestamptz[],
                         %(max_ts)s::timestamptz[]) AS t(worker_id, station_id, min_ts, max_ts)
), models AS (
    SELECT * FROM unnest(%(models)s::text[], %(gateways)s::text[], %(shadows)s::boolean[],
                         %(sites)s::text[], %(first_seen)s::timestamptz[])
                  AS t(model_version, gateway_id, shadow, site_id, first_seen)
), seen_models AS (
    INSERT INTO cv_models (model_version, first_seen)
    SELECT model_version, min(first_seen) FROM models GROUP BY model_version ORDER BY model_version
    ON CONFLICT DO NOTHING
), seen_model_gateways AS (
    INSERT INTO cv_model_gateways (model_version, gateway_id, shadow, site_id, first_seen)
    SELECT * FROM models ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING
), invalidated AS (
    INSERT INTO event_invalidations (worker_id, station_id, min_ts, max_ts) SELECT * FROM spans
), new_workers AS (
    INSERT INTO workers (worker_id, name, registered)
    SELECT DISTINCT worker_id, worker_id, false FROM spans ON CONFLICT DO NOTHING
)
INSERT INTO workstations (station_id, name, registered)
SELECT DISTINCT station_id, station_id, false FROM spans ON CONFLICT DO NOTHING
"""

# Which of a batch's events are stored already: one primary key lookup per
# (event_id, ts). LATERAL ... LIMIT 1 keeps it so whatever the statistics say:
# they lag a table that grows by a million rows a minute, and a plan from
# stale estimates (scanning the batch's time range) costs a hundred times more.
# The constant time bounds let TimescaleDB leave other chunks (compressed ones
# above all) out of the plan.
_STORED = (
    "SELECT encode(uuid_send(k.event_id), 'hex') "
    "FROM unnest(%s::uuid[], %s::timestamptz[]) AS k(event_id, ts) CROSS JOIN LATERAL "
    "(SELECT FROM events e WHERE e.event_id = k.event_id AND e.ts = k.ts "
    "AND e.ts >= %s AND e.ts <= %s LIMIT 1) e"
)


@dataclass(frozen=True, slots=True)
class Registration:
    """What storing a batch registers besides its rows (see _REGISTER)."""

    # (worker, station, first ts, last ts)
    spans: tuple[tuple[str, str, datetime, datetime], ...] = ()
    # (model version, gateway or '', shadow, site, first ts)
    models: tuple[tuple[str, str, bool, str | None, datetime], ...] = ()

    @classmethod
    def of(cls, events: Iterable[Event]) -> Registration:
        spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        models: dict[tuple[str, str, bool], tuple[str | None, datetime]] = {}
        for e in events:
            ts = e.timestamp
            key = (e.worker_id, e.station_id)
            span = spans.get(key)
            if span is None:
                spans[key] = (ts, ts)
            elif ts < span[0] or ts > span[1]:
                spans[key] = (min(ts, span[0]), max(ts, span[1]))
            if e.model_version is not None:
                # min(site_id), min(ts) per version, gateway and shadow flag, NULL sites ignored.
                model_key = (e.model_version, e.gateway_id or "", e.shadow)
                seen = models.get(model_key)
                if seen is None:
                    models[model_key] = (e.site_id, ts)
                elif ts < seen[1] or (e.site_id is not None and (seen[0] is None or e.site_id < seen[0])):
                    sites = [site for site in (seen[0], e.site_id) if site is not None]
                    models[model_key] = (min(sites) if sites else None, min(ts, seen[1]))
        return cls(
            spans=tuple((w, s, lo, hi) for (w, s), (lo, hi) in spans.items()),
            models=tuple((m, g, sh, site, ts) for (m, g, sh), (site, ts) in sorted(models.items())),
        )

    def write(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            _REGISTER,
            {
                "workers": [s[0] for s in self.spans],
                "stations": [s[1] for s in self.spans],
                "min_ts": [s[2] for s in self.spans],
                "max_ts": [s[3] for s in self.spans],
                "models": [m[0] for m in self.models],
                "gateways": [m[1] for m in self.models],
                "shadows": [m[2] for m in self.models],
                "sites": [m[3] for m in self.models],
                "first_seen": [m[4] for m in self.models],
            },
        )


@dataclass(frozen=True, slots=True)
class CopyBatch:
    """Events as COPY text, with what registering them needs; small and cheap to pickle.

    Built by :func:`copy_batch` (in a collector's decoding process), written by
    :func:`insert_copy_batch` (its writer).
    """

    data: bytes
    rows: int
    # The events that may be stored already, which the writer looks up before
    # copying: PostgreSQL array literals of their ids and times, and their time span.
    probe_ids: str = "{}"
    probe_times: str = "{}"
    probe_span: tuple[datetime, datetime] | None = None
    registration: Registration = Registration()


@dataclass(slots=True)
class SeenSeqs:
    """Per gateway, the highest ``seq`` among the batches one decoder has turned into COPY text.

    An event numbered above it is new to that decoder, so its writer need not
    look it up before copying: the lookup is most of the database's work per
    event beyond the copy itself. A wrong guess costs time, not correctness:
    should such an event be stored already (another collector stored it, this
    one restarted, or the gateway's numbering restarted), the copy fails on the
    primary key and the batch is merged instead.
    """

    highest: dict[str, int] = field(default_factory=dict)

    def advance(self, seqs_by_gateway: Mapping[str, Sequence[int]]) -> None:
        """Take in a batch's seq numbers (``Plan.seqs``)."""
        highest = self.highest
        for gateway_id, seqs in seqs_by_gateway.items():
            if seqs:
                highest[gateway_id] = max(highest.get(gateway_id, -1), *seqs)


def copy_batch(events: Sequence[Event], seen: SeenSeqs | None = None) -> CopyBatch:
    """COPY text and registration aggregates of ``events`` (distinct ids).

    Without ``seen`` every event is looked up before copying; with it, only
    those not new to the decoder (see :class:`SeenSeqs`).
    """
    if not events:
        return CopyBatch(b"", 0)
    lines = [_copy_line(e) for e in events]
    probe = list(zip(lines, events, strict=True))
    if seen is not None:
        highest = seen.highest
        probe = [
            (line, e)
            for line, e in probe
            if (known := highest.get(e.gateway_id or "")) is None or e.seq is None or e.seq <= known
        ]
    times = [e.timestamp for _, e in probe]
    return CopyBatch(
        data=("\n".join(lines) + "\n").encode(),
        rows=len(events),
        # Each line starts with its event's id (32 hex digits), then a tab and its time.
        probe_ids="{" + ",".join([line[:32] for line, _ in probe]) + "}",
        probe_times="{" + ",".join([line[33 : line.index("\t", 33)] for line, _ in probe]) + "}",
        probe_span=(min(times), max(times)) if times else None,
        registration=Registration.of(events),
    )


def stored_ids(conn: psycopg.Connection[Any], batch: CopyBatch) -> set[bytes]:
    """Ids (32 hex digits, as the COPY lines start) of the batch's looked-up events already stored."""
    if batch.probe_span is None:
        return set()
    params = (batch.probe_ids, batch.probe_times, *batch.probe_span)
    return {row[0].encode() for row in conn.execute(_STORED, params)}


def insert_copy_batch(conn: psycopg.Connection[Any], batch: CopyBatch) -> WriteResult:
    """:func:`insert_events` for a :class:`CopyBatch`, inside the caller's transaction.

    The events not stored yet are copied straight into ``events``: cheaper
    than merging through a staging table with ``ON CONFLICT``. Should another
    writer store some of them between the check and the copy, the copy fails
    on the primary key and the batch goes the merge way instead.
    """
    if not batch.rows:
        return WriteResult(0, 0)
    stored = stored_ids(conn, batch)
    data = batch.data
    if stored:
        lines = [line for line in data.split(b"\n")[:-1] if line[:32] not in stored]
        if not lines:
            return WriteResult(0, batch.rows)
        data = b"\n".join(lines) + b"\n"
    try:
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY events ({_COLUMNS_SQL}) FROM STDIN") as copy,
        ):
            copy.write(data)
    except psycopg.errors.UniqueViolation:
        return _merge_copy_data(conn, batch)
    batch.registration.write(conn)
    inserted = batch.rows - len(stored)
    return WriteResult(inserted=inserted, duplicates=len(stored))


def _merge_copy_data(conn: psycopg.Connection[Any], batch: CopyBatch) -> WriteResult:
    """Merge the batch through a staging table (``INSERT … ON CONFLICT DO NOTHING``)."""
    # One round trip for both statements: each costs a GIL hand-off in a busy collector.
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS staging_events AS SELECT {_COLUMNS_SQL} FROM events "
        "WITH NO DATA; TRUNCATE staging_events"
    )
    with conn.cursor() as cur:
        with cur.copy(f"COPY staging_events ({_COLUMNS_SQL}) FROM STDIN") as copy:
            copy.write(batch.data)
        cur.execute(
            f"INSERT INTO events ({_COLUMNS_SQL}) SELECT {_COLUMNS_SQL} FROM staging_events "
            "ON CONFLICT DO NOTHING"
        )
        inserted = cur.rowcount
    if inserted:
        batch.registration.write(conn)
    return WriteResult(inserted=inserted, duplicates=batch.rows - inserted)


def insert_events(
    conn: psycopg.Connection[Any], events: Sequence[Event], method: WriteMethod = WriteMethod.COPY
) -> WriteResult:
    """Store events that are not stored yet; returns how many were new."""
    if not events:
        return WriteResult(0, 0)
    if method is WriteMethod.COPY:
        return insert_copy_batch(conn, copy_batch(events))
    columns = list(zip(*(_row(e) for e in events), strict=True))
    arrays = ", ".join(f"%s::{t}[]" for t in _COLUMN_TYPES)
    inserted = conn.execute(
        f"INSERT INTO events ({_COLUMNS_SQL}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING",
        [list(c) for c in columns],
    ).rowcount
    if inserted:
        Registration.of(events).write(conn)
    return WriteResult(inserted=inserted, duplicates=len(events) - inserted)


def insert_dead_letters(conn: psycopg.Connection[Any], letters: Iterable[DeadLetter]) -> int:
    rows = [(d.source, d.topic, d.gateway_id, d.event_index, d.seq, d.reason, d.payload) for d in letters]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dead_letters (source, topic, gateway_id, event_index, seq, reason, payload) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
    return len(rows)


def record_seqs(conn: psycopg.Connection[Any], gateway_id: str, seqs: Iterable[int]) -> None:
    """Merge received sequence numbers into the gateway's audit ranges."""
    new = seq_ranges(seqs)
    if not new:
        return
    lo, hi = new[0][0], new[-1][1]
    # Lock the gateway's ranges: two collectors may handle the same gateway.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (gateway_id,))
    overlapping = conn.execute(
        "DELETE FROM gateway_seq_ranges WHERE gateway_id = %s AND last_seq >= %s - 1 "
        "AND first_seq <= %s + 1 RETURNING first_seq, last_seq",
        (gateway_id, lo, hi),
    ).fetchall()
    merged: list[tuple[int, int]] = []
    for first, last in sorted([*new, *((int(a), int(b)) for a, b in overlapping)]):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gateway_seq_ranges (gateway_id, first_seq, last_seq) VALUES (%s, %s, %s)",
            [(gateway_id, first, last) for first, last in merged],
        )


def record_seqs_many(conn: psycopg.Connection[Any], seqs_by_gateway: Mapping[str, Iterable[int]]) -> None:
    """:func:`record_seqs` for several gateways in three statements instead of three each."""
    new = {g: seq_ranges(seqs) for g, seqs in seqs_by_gateway.items()}
    gateways = sorted(g for g, ranges in new.items() if ranges)
    if not gateways:
        return
    # Same locks as record_seqs, taken in a fixed order so collectors never deadlock.
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(g)) FROM (SELECT unnest(%s::text[]) AS g ORDER BY 1) s",
        (gateways,),
    )
    overlapping = conn.execute(
        "DELETE FROM gateway_seq_ranges r "
        "USING unnest(%s::text[], %s::bigint[], %s::bigint[]) AS n(g, lo, hi) "
        "WHERE r.gateway_id = n.g AND r.last_seq >= n.lo - 1 AND r.first_seq <= n.hi + 1 "
        "RETURNING r.gateway_id, r.first_seq, r.last_seq",
        (gateways, [new[g][0][0] for g in gateways], [new[g][-1][1] for g in gateways]),
    ).fetchall()
    for gateway_id, first, last in overlapping:
        new[gateway_id].append((int(first), int(last)))
    rows: list[tuple[str, int, int]] = []
    for gateway_id in gateways:
        merged: list[tuple[int, int]] = []
        for first, last in sorted(new[gateway_id]):
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        rows += [(gateway_id, first, last) for first, last in merged]
    conn.execute(
        "INSERT INTO gateway_seq_ranges (gateway_id, first_seq, last_seq) "
        "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[])",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
    )


def seq_gaps(conn: psycopg.Connection[Any], gateway_id: str) -> list[tuple[int, int]]:
    """Inclusive ranges of sequence numbers not (yet) received below the highest one.

    Gateways number their events from 1 (docs/contract.md).
    """
    rows = conn.execute(
        "SELECT first_seq, last_seq FROM gateway_seq_ranges WHERE gateway_id = %s ORDER BY first_seq",
        (gateway_id,),
    ).fetchall()
    gaps: list[tuple[int, int]] = []
    expected = 1
    for first, last in rows:
        if first > expected:
            gaps.append((expected, int(first) - 1))
        expected = int(last) + 1
    return gaps


def write_events(
    conn: psycopg.Connection[Any], events: Sequence[Event], method: WriteMethod = WriteMethod.COPY
) -> WriteResult:
    """Insert in a transaction of its own (HTTP ingestion, scripts)."""
    with conn.transaction():
        return insert_events(conn, events, method)


def latest_event_time(conn: psycopg.Connection[Any]) -> datetime | None:
    row = conn.execute("SELECT max(ts) FROM events").fetchone()
    return row[0] if row else None
