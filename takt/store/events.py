"""Idempotent event storage, shared by the MQTT collector and HTTP ingestion.

Functions here run inside the caller's transaction, so a collector commits a
batch's events, dead letters and sequence audit together, and only then
acknowledges. ``event_id`` alone is the key, whatever the timestamp: writing
an event twice stores it once, and an id sent again with other content is a
conflict, refused with the reason (:class:`Conflict`), never stored.

TimescaleDB requires the time column in every unique index of a hypertable,
so the primary key of ``events`` is (event_id, ts) and cannot say that alone.
``event_ids``, a plain table keyed by event_id alone (migration 0007), is the
registry of every stored id and its ts: each write registers its ids first,
in the same transaction, and only the events whose ids were new are stored.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import SimpleNamespace
from typing import Any, cast

import orjson
import psycopg

from takt.contract import STATE_EVENT_TYPES, Event, seq_ranges

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
    "rejected",
    "sku",
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
    "integer",
    "text",
)
_COLUMNS_SQL = ", ".join(EVENT_COLUMNS)
# The contract's name of each column, for conflict reasons and dead letters
# (None: derived by the cloud, not part of what a gateway sent).
_CONTRACT_FIELDS: tuple[str | None, ...] = tuple(
    {"ts": "timestamp", "effective_duration_s": None}.get(c, c) for c in EVENT_COLUMNS
)
_GATEWAY, _SITE, _SEQ = (
    EVENT_COLUMNS.index("gateway_id"),
    EVENT_COLUMNS.index("site_id"),
    EVENT_COLUMNS.index("seq"),
)


class WriteMethod(StrEnum):
    # COPY into a staging table, then one INSERT ... ON CONFLICT: the fastest.
    COPY = "copy"
    # One INSERT ... SELECT FROM unnest(arrays): for engines without COPY
    # (the PGlite TimescaleDB build used to test the Timescale SQL).
    UNNEST = "unnest"


@dataclass(frozen=True, slots=True)
class Conflict:
    """An event whose id is stored (or earlier in its batch) with other content: refused."""

    event_id: uuid.UUID
    reason: str
    # The refused event, as JSON (for its dead letter).
    payload: bytes
    gateway_id: str | None = None
    site_id: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    # Re-sends of stored events, the same in every field.
    duplicates: int
    conflicts: tuple[Conflict, ...] = ()
    # gateway ('' for none) -> seq numbers of the events this write stored
    # (new events; re-sends and conflicts excluded), for the sequence audit.
    fresh_seqs: Mapping[str, Sequence[int]] = field(default_factory=dict, compare=False)


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
        event.rejected,
        event.sku,
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
            _NULL if event.rejected is None else str(event.rejected),
            event.sku or _NULL,
        )
    )


# Queue rollup invalidations from ``source`` (rows worker_id, station_id,
# min_ts, max_ts): one row per worker, station, hour of min_ts and second of
# the writing transaction (migration 0008). A key-hour already queued in this
# second is widened and given a new id, so a refresh round that read it before
# (and deletes what it consumed by id) leaves it queued; rows of earlier
# seconds are never widened, so a long round still consumes them. Rows are
# locked in key order, so concurrent writers never deadlock on them. Every
# writer of events or deletions queues through this.
# A row already queued for the key-hour in this second is widened (docs/metrics.md, "The queue").
WIDEN_QUEUED = """
    ON CONFLICT (worker_id, station_id, bucket, slot) DO UPDATE
    SET min_ts = least(i.min_ts, excluded.min_ts), max_ts = greatest(i.max_ts, excluded.max_ts),
        id = nextval(pg_get_serial_sequence('event_invalidations', 'id'))"""


def invalidate_sql(source: str) -> str:
    return f"""
    INSERT INTO event_invalidations AS i (worker_id, station_id, min_ts, max_ts)
    SELECT worker_id, station_id, min(min_ts), max(max_ts) FROM {source}
    GROUP BY worker_id, station_id, date_bin('1 hour', min_ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')
    ORDER BY 1, 2, 3{WIDEN_QUEUED}"""


INVALIDATE = invalidate_sql(
    "unnest(%(workers)s::text[], %(stations)s::text[], %(min_ts)s::timestamptz[], %(max_ts)s::timestamptz[]) "
    "AS t(worker_id, station_id, min_ts, max_ts)"
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
    {invalidate}
), new_workers AS (
    INSERT INTO workers (worker_id, name, registered)
    SELECT DISTINCT worker_id, worker_id, false FROM spans ON CONFLICT DO NOTHING
)
INSERT INTO workstations (station_id, name, registered)
SELECT DISTINCT station_id, station_id, false FROM spans ON CONFLICT DO NOTHING
""".replace("{invalidate}", invalidate_sql("spans"))

# Which of a batch's ids are registered already, and at which time: one
# primary key lookup each in event_ids (not a hypertable: no chunks to plan).
_REGISTERED = "SELECT encode(uuid_send(event_id), 'hex'), ts FROM event_ids WHERE event_id = ANY(%s::uuid[])"
# The stored content of registered ids: one primary key lookup per (event_id, ts)
# in events. LATERAL ... LIMIT 1 keeps it so whatever the statistics say (they
# lag a table that grows by a million rows a minute); the constant time bounds
# let TimescaleDB leave other chunks (compressed ones above all) out of the plan.
_STORED_CONTENT = (
    "SELECT e.* FROM unnest(%s::uuid[], %s::timestamptz[]) AS k(event_id, ts) CROSS JOIN LATERAL "
    f"(SELECT {_COLUMNS_SQL} FROM events e WHERE e.event_id = k.event_id AND e.ts = k.ts "
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
    # COPY text of the events' (event_id, ts) for the event_ids registry, line for line.
    ids_data: bytes = b""
    # The events that may be stored already, which the writer looks up before
    # copying: a PostgreSQL array literal of their ids.
    probe_ids: str = "{}"
    registration: Registration = Registration()
    # gateway ('' for none) -> the events' seq numbers
    seqs: Mapping[str, Sequence[int]] = field(default_factory=dict)


@dataclass(slots=True)
class SeenSeqs:
    """Per gateway, the highest ``seq`` among the batches one decoder has turned into COPY text.

    An event numbered above it is new to that decoder, so its writer need not
    look it up before copying. A wrong guess costs time, not correctness:
    should such an id be registered already (another collector stored it, this
    one restarted, the gateway's numbering restarted, or the id is re-used with
    another timestamp), the copy fails on the primary key of ``event_ids`` and
    the batch is merged instead.
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
    seqs: dict[str, list[int]] = {}
    for e in events:
        if e.seq is not None:
            seqs.setdefault(e.gateway_id or "", []).append(e.seq)
    return CopyBatch(
        data=("\n".join(lines) + "\n").encode(),
        rows=len(events),
        # Each line starts with its event's id (32 hex digits), then a tab and its time.
        ids_data=("\n".join([line[: line.index("\t", 33)] for line in lines]) + "\n").encode(),
        probe_ids="{" + ",".join([line[:32] for line, _ in probe]) + "}",
        registration=Registration.of(events),
        seqs=seqs,
    )


def _registered(conn: psycopg.Connection[Any], ids: str) -> dict[bytes, datetime]:
    """Id (32 hex digits, as COPY lines start) -> ts, of the registered ids among ``ids`` (an array)."""
    if ids == "{}":
        return {}
    return {row[0].encode(): row[1] for row in conn.execute(_REGISTERED, (ids,))}


def stored_ids(conn: psycopg.Connection[Any], batch: CopyBatch) -> set[bytes]:
    """Ids (32 hex digits, as the COPY lines start) of the batch's looked-up events already stored."""
    return set(_registered(conn, batch.probe_ids))


def _field_values(line: bytes) -> list[str | None]:
    """The columns of a COPY line as text (None for NULL; labels unescaped)."""
    return [None if value == _NULL else value.replace("\\\\", "\\") for value in line.decode().split("\t")]


def _event_json(values: Sequence[str | None]) -> bytes:
    """A COPY line's event as the contract's JSON, for a dead letter."""
    doc: dict[str, Any] = {}
    for name, value in zip(_CONTRACT_FIELDS, values, strict=True):
        if name is None or value is None:
            continue
        if name == "event_id":
            doc[name] = str(uuid.UUID(value))
        elif name in ("confidence", "duration_s"):
            doc[name] = float(value)
        elif name in ("count", "seq", "rejected"):
            doc[name] = int(value)
        elif name == "shadow":
            doc[name] = value == "t"
        else:
            doc[name] = value
    return orjson.dumps(doc)


def _stored_line(row: Sequence[Any]) -> bytes:
    """The COPY line :func:`_copy_line` makes of a stored row: equal lines, equal events."""
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    values.pop("effective_duration_s")  # derived by the cloud, not sent
    values["timestamp"] = values.pop("ts").astimezone(UTC)
    # The attributes _copy_line reads, without building (or validating) a model.
    values["is_state"] = values["event_type"] in STATE_EVENT_TYPES
    return _copy_line(cast(Event, SimpleNamespace(**values))).encode()


def _conflicts(
    conn: psycopg.Connection[Any], lines: Iterable[bytes], registered: Mapping[bytes, datetime]
) -> tuple[list[Conflict], set[bytes]]:
    """Which of ``lines`` (events whose ids are registered) differ from what is stored under their id.

    Also returns the ids registered without a stored event (events deleted
    other than through the API, e.g. by hand or by dropping chunks): stale
    registrations, which the caller forgets so the events are stored again.
    """
    candidates = {line[:32]: line for line in lines}
    if not candidates:
        return [], set()
    keys = list(candidates)
    times = [registered[k] for k in keys]
    ids = "{" + ",".join(k.decode() for k in keys) + "}"
    rows = conn.execute(_STORED_CONTENT, (ids, times, min(times), max(times))).fetchall()
    conflicts: list[Conflict] = []
    stale = set(candidates)
    for row in rows:
        stored = _stored_line(row)
        stale.discard(stored[:32])
        line = candidates[stored[:32]]
        if line == stored:
            continue
        sent, kept = _field_values(line), _field_values(stored)
        differ = [n for n, a, b in zip(_CONTRACT_FIELDS, sent, kept, strict=True) if n and a != b]
        event_id = uuid.UUID(sent[0])
        conflicts.append(
            Conflict(
                event_id=event_id,
                reason=f"conflict: event_id {event_id} is stored already with other content "
                f"({', '.join(differ)} differ); the stored event is kept",
                payload=_event_json(sent),
                gateway_id=sent[_GATEWAY],
                site_id=sent[_SITE],
                seq=_seq_of(sent),
            )
        )
    return conflicts, stale


def _forget(conn: psycopg.Connection[Any], ids: Iterable[bytes]) -> None:
    """Drop stale registrations (see :func:`_conflicts`)."""
    conn.execute(
        "DELETE FROM event_ids WHERE event_id = ANY(%s::uuid[])",
        ("{" + ",".join(k.decode() for k in ids) + "}",),
    )


def _seq_of(values: Sequence[str | None]) -> int | None:
    seq = values[_SEQ]
    return None if seq is None else int(seq)


def _gateway_seq(line: bytes) -> tuple[str, int | None]:
    """A COPY line's gateway ('' for none) and seq; ids need no unescaping."""
    fields = line.split(b"\t", _SEQ + 1)
    gateway, seq = fields[_GATEWAY], fields[_SEQ]
    return ("" if gateway == b"\\N" else gateway.decode()), (None if seq == b"\\N" else int(seq))


def _fresh_seqs(batch: CopyBatch, not_stored: Iterable[bytes]) -> Mapping[str, Sequence[int]]:
    """The batch's seq numbers, less those of the lines ``not_stored`` (re-sends, conflicts)."""
    removed: dict[str, list[int]] = {}
    for line in not_stored:
        gateway_id, seq = _gateway_seq(line)
        if seq is not None:
            removed.setdefault(gateway_id, []).append(seq)
    if not removed:
        return batch.seqs
    fresh: dict[str, Sequence[int]] = dict(batch.seqs)
    for gateway_id, seqs in removed.items():
        fresh[gateway_id] = list((Counter(batch.seqs.get(gateway_id, ())) - Counter(seqs)).elements())
    return fresh


def _join_lines(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n" if lines else b""


def insert_copy_batch(conn: psycopg.Connection[Any], batch: CopyBatch) -> WriteResult:
    """:func:`insert_events` for a :class:`CopyBatch`, inside the caller's transaction.

    The ids not registered yet are copied straight into ``event_ids`` and their
    events into ``events``: cheaper than merging through a staging table with
    ``ON CONFLICT``. Looked-up events already registered are compared with what
    is stored (duplicates or conflicts) and not copied. Should another writer
    register some of the ids between the check and the copy (or a decoder's
    guess that they were new be wrong), the copy fails on the registry's
    primary key and the batch goes the merge way instead.
    """
    if not batch.rows:
        return WriteResult(0, 0)
    registered = _registered(conn, batch.probe_ids)
    data, ids_data = batch.data, batch.ids_data
    conflicts: list[Conflict] = []
    known: list[bytes] = []
    if registered:
        lines, id_lines = data.split(b"\n")[:-1], ids_data.split(b"\n")[:-1]
        keep = [line[:32] not in registered for line in lines]
        known = [line for line, k in zip(lines, keep, strict=True) if not k]
        conflicts, stale = _conflicts(conn, known, registered)
        if stale:
            _forget(conn, stale)
            keep = [k or line[:32] in stale for line, k in zip(lines, keep, strict=True)]
            known = [line for line, k in zip(lines, keep, strict=True) if not k]
        data = _join_lines([line for line, k in zip(lines, keep, strict=True) if k])
        ids_data = _join_lines([line for line, k in zip(id_lines, keep, strict=True) if k])
    if data:
        try:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY event_ids (event_id, ts) FROM STDIN") as copy:
                    copy.write(ids_data)
                with cur.copy(f"COPY events ({_COLUMNS_SQL}) FROM STDIN") as copy:
                    copy.write(data)
        except psycopg.errors.UniqueViolation:
            return _merge_copy_data(conn, batch)
        batch.registration.write(conn)
    return WriteResult(
        inserted=batch.rows - len(known),
        duplicates=len(known) - len(conflicts),
        conflicts=tuple(conflicts),
        fresh_seqs=_fresh_seqs(batch, known),
    )


# Register the staged ids (those registered already are skipped), then store
# the events whose ids were new; returns those ids.
_MERGE = f"""
WITH new AS (
    INSERT INTO event_ids (event_id, ts) SELECT event_id, ts FROM staging_events
    ON CONFLICT DO NOTHING RETURNING event_id
)
INSERT INTO events ({_COLUMNS_SQL})
SELECT {", ".join(f"s.{c}" for c in EVENT_COLUMNS)} FROM staging_events s JOIN new USING (event_id)
ON CONFLICT DO NOTHING
RETURNING encode(uuid_send(event_id), 'hex')
"""


def _merge_copy_data(conn: psycopg.Connection[Any], batch: CopyBatch) -> WriteResult:
    """Merge the batch through a staging table, registering its ids (``ON CONFLICT DO NOTHING``)."""
    # One round trip for both statements: each costs a GIL hand-off in a busy collector.
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS staging_events AS SELECT {_COLUMNS_SQL} FROM events "
        "WITH NO DATA; TRUNCATE staging_events"
    )
    with conn.cursor() as cur:
        with cur.copy(f"COPY staging_events ({_COLUMNS_SQL}) FROM STDIN") as copy:
            copy.write(batch.data)
        inserted = {row[0].encode() for row in cur.execute(_MERGE).fetchall()}
        lines = batch.data.split(b"\n")[:-1]
        known = [line for line in lines if line[:32] not in inserted]
        conflicts, stale = _conflicts_of_registered(conn, known)
        if stale:
            _forget(conn, stale)
            inserted |= {row[0].encode() for row in cur.execute(_MERGE).fetchall()}
            known = [line for line in lines if line[:32] not in inserted]
    if inserted:
        batch.registration.write(conn)
    return WriteResult(
        inserted=len(inserted),
        duplicates=len(known) - len(conflicts),
        conflicts=tuple(conflicts),
        fresh_seqs=_fresh_seqs(batch, known),
    )


def _conflicts_of_registered(
    conn: psycopg.Connection[Any], lines: Sequence[bytes]
) -> tuple[list[Conflict], set[bytes]]:
    """:func:`_conflicts` for lines whose ids were registered by another write (their ts looked up here)."""
    if not lines:
        return [], set()
    registered = _registered(conn, "{" + ",".join(line[:32].decode() for line in lines) + "}")
    return _conflicts(conn, [line for line in lines if line[:32] in registered], registered)


def distinct_events(events: Iterable[Event]) -> tuple[list[Event], int, list[Conflict]]:
    """Events with distinct ids, in order; how many repeats were the same event; the conflicting repeats."""
    kept: dict[uuid.UUID, Event] = {}
    repeats = 0
    conflicts: list[Conflict] = []
    for event in events:
        first = kept.get(event.event_id)
        if first is None:
            kept[event.event_id] = event
        elif first == event:
            repeats += 1
        else:
            conflicts.append(batch_conflict(first, event))
    return list(kept.values()), repeats, conflicts


def batch_conflict(first: Event, other: Event) -> Conflict:
    """``other`` repeats the id of ``first``, earlier in the same batch, with other content."""
    a, b = first.model_dump(), other.model_dump()
    differ = [name for name in a if a[name] != b[name]]
    return Conflict(
        event_id=other.event_id,
        reason=f"conflict: event_id {other.event_id} appears earlier in the batch with other content "
        f"({', '.join(differ)} differ); the first is kept",
        payload=other.__pydantic_serializer__.to_json(other, exclude_none=True),
        gateway_id=other.gateway_id,
        site_id=other.site_id,
        seq=other.seq,
    )


def insert_events(
    conn: psycopg.Connection[Any], events: Sequence[Event], method: WriteMethod = WriteMethod.COPY
) -> WriteResult:
    """Store events that are not stored yet; returns how many were new, repeated and conflicting."""
    if not events:
        return WriteResult(0, 0)
    unique, repeats, in_batch = distinct_events(events)
    if method is WriteMethod.COPY:
        result = insert_copy_batch(conn, copy_batch(unique))
    else:
        result = _insert_unnest(conn, unique)
    return WriteResult(
        inserted=result.inserted,
        duplicates=result.duplicates + repeats,
        conflicts=(*result.conflicts, *in_batch),
        fresh_seqs=result.fresh_seqs,
    )


def _insert_unnest(conn: psycopg.Connection[Any], events: Sequence[Event]) -> WriteResult:
    """One INSERT ... SELECT FROM unnest(arrays) registering and storing ``events`` (distinct ids)."""
    columns = [list(c) for c in zip(*(_row(e) for e in events), strict=True)]
    arrays = ", ".join(f"%s::{t}[]" for t in _COLUMN_TYPES)
    statement = (
        f"WITH c AS (SELECT * FROM unnest({arrays}) AS c({_COLUMNS_SQL})), "
        "new AS (INSERT INTO event_ids (event_id, ts) SELECT event_id, ts FROM c "
        "ON CONFLICT DO NOTHING RETURNING event_id) "
        f"INSERT INTO events ({_COLUMNS_SQL}) SELECT {', '.join(f'c.{n}' for n in EVENT_COLUMNS)} "
        "FROM c JOIN new USING (event_id) ON CONFLICT DO NOTHING RETURNING event_id"
    )
    inserted = {row[0] for row in conn.execute(statement, columns).fetchall()}
    known = [_copy_line(e).encode() for e in events if e.event_id not in inserted]
    conflicts, stale = _conflicts_of_registered(conn, known)
    if stale:
        _forget(conn, stale)
        inserted |= {row[0] for row in conn.execute(statement, columns).fetchall()}
        known = [_copy_line(e).encode() for e in events if e.event_id not in inserted]
    if inserted:
        Registration.of(events).write(conn)
    seqs: dict[str, list[int]] = {}
    for e in events:
        if e.seq is not None and e.event_id in inserted:
            seqs.setdefault(e.gateway_id or "", []).append(e.seq)
    return WriteResult(
        inserted=len(inserted),
        duplicates=len(known) - len(conflicts),
        conflicts=tuple(conflicts),
        fresh_seqs=seqs,
    )


def _storable(text: str | None) -> str | None:
    """``text`` without NUL characters, which PostgreSQL text cannot hold (a reason may quote input)."""
    return None if text is None else text.replace("\x00", "\\x00")


def insert_dead_letters(conn: psycopg.Connection[Any], letters: Iterable[DeadLetter]) -> int:
    rows = [
        (
            d.source,
            _storable(d.topic),
            _storable(d.gateway_id),
            d.event_index,
            d.seq,
            _storable(d.reason),
            d.payload,
        )
        for d in letters
    ]
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


def record_seqs_many(
    conn: psycopg.Connection[Any],
    seqs_by_gateway: Mapping[str, Iterable[int]],
    fresh: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, int]:
    """:func:`record_seqs` for several gateways in three statements instead of three each.

    ``fresh``: per gateway, the seq numbers of the events this transaction
    stored as new (:attr:`WriteResult.fresh_seqs`). A new event numbered with
    a seq the gateway has used before (already received, or twice in this
    batch) means its numbering went backwards or repeated: counted in
    ``gateway_seq_reuse``. Returns those counts. A seq filling a gap is not
    reuse: it arrived late.
    """
    new = {g: seq_ranges(seqs) for g, seqs in seqs_by_gateway.items()}
    gateways = sorted(g for g, ranges in new.items() if ranges)
    if not gateways:
        return {}
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
    existing: dict[str, list[tuple[int, int]]] = {}
    for gateway_id, first, last in overlapping:
        existing.setdefault(gateway_id, []).append((int(first), int(last)))
        new[gateway_id].append((int(first), int(last)))
    reused = {
        g: numbers
        for g in gateways
        if (numbers := reused_seq_numbers((fresh or {}).get(g, ()), existing.get(g, [])))
    }
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
    if reused:
        names = sorted(reused)
        conn.execute(
            "INSERT INTO gateway_seq_reuse AS r (gateway_id, reused, last_seq) "
            "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) "
            "ON CONFLICT (gateway_id) DO UPDATE SET reused = r.reused + EXCLUDED.reused, "
            "last_seq = EXCLUDED.last_seq, last_detected = now()",
            (names, [len(reused[g]) for g in names], [reused[g][-1] for g in names]),
        )
    return {g: len(numbers) for g, numbers in reused.items()}


def reused_seq_numbers(fresh: Iterable[int], received: Sequence[tuple[int, int]]) -> list[int]:
    """The seqs of new events that were used before: inside ``received`` ranges, or repeated in ``fresh``."""
    bounds = sorted(received)
    seen: set[int] = set()
    reused: list[int] = []
    for seq in fresh:
        if seq in seen or any(first <= seq <= last for first, last in bounds):
            reused.append(seq)
        seen.add(seq)
    return reused


def write_events(
    conn: psycopg.Connection[Any], events: Sequence[Event], method: WriteMethod = WriteMethod.COPY
) -> WriteResult:
    """Insert in a transaction of its own (HTTP ingestion, scripts)."""
    with conn.transaction():
        return insert_events(conn, events, method)
