"""Read-your-writes: what the refresher has not yet rolled up, computed from events at query time.

The rollups are exact for everything the refresher has consumed; what it has
not (the rows of ``event_invalidations``) is the *tail*. For each pending
worker key (a worker, or ``unknown`` at one station) the tail is a **region**
of its timeline ``[C, end of R's hour)``: ``C`` is the earliest event whose
stored duration may be stale (the first event of the pending range, or the
state event before it in any affected partition, whose "next" may have
changed), ``R`` the latest end of any such event, old or new. Outside its
regions a worker's stored rollup rows equal the truth (that is the refresher's
own correctness argument: every change queues an invalidation, and consuming
one rebuilds everything it reaches). Inside a region:

- the stored detail elements that start at or after ``C`` (state pieces,
  events, units, as microsecond offsets from their hour) are subtracted, and
- the events from ``C`` on are added back with durations derived at query
  time by the refresher's rule (the same ``lead()`` over the partition,
  capped at the gap), split at hour boundaries like the refresher splits them.

Stored pieces that start before ``C`` come from events that did not change, so
they stay. (A state from before ``C`` that runs past the end of ``C``'s hour is
read from events as well: the only case that needs the lookback.) Worker and
model figures are sums, so the signed elements correct them directly. A
station's union seconds are not sums: for each station-hour the tail touches,
from ``cut`` (its earliest touched offset) on, the union is recomputed from
the current pieces of every worker at the station (stored ones of other
workers, the worker's own kept and re-derived ones) and replaces the stored
islands from ``cut`` on; before ``cut`` nothing changed. Cycle times get the
station-hour's unit offsets from ``cut`` on the same way.

The cost follows the tail (events from ``C`` on, the pieces of the touched
station-hours from ``cut`` on), not the size of the table. Everything is read
in the caller's snapshot (see ``engine.snapshot``): an invalidation committed
with its events is either in the snapshot with them or not at all.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from threading import Lock
from typing import Any, NamedTuple

import psycopg

from takt import states
from takt.store import codes
from takt.store.rollups import HOUR, ORIGIN, floor_hour, lookback_s

MICROSECOND = timedelta(microseconds=1)
HOUR_US = HOUR // MICROSECOND
# (label, start, end): the engine's labelled windows.
Labelled = tuple[int, datetime, datetime]


class Element(NamedTuple):
    """A signed element of a worker-hour's detail: a state piece (kind w/i/a, [f, t)), an event
    ('e', at f, with its confidence) or a unit event ('u', at f, n units); offsets in microseconds."""

    sign: int
    bucket: datetime
    site: str
    worker: str
    station: str
    model: str
    shadow: bool
    kind: str
    f: int
    t: int
    conf: float = 0.0
    n: int = 0


class StationElement(NamedTuple):
    """A signed element of a station-hour: a union island (o/w/b, [f, t)), an event ('e') or units ('u')."""

    sign: int
    bucket: datetime
    site: str
    station: str
    kind: str
    f: int
    t: int
    n: int = 0


@dataclass(slots=True)
class Tail:
    """The signed corrections of the rollups for everything pending, and per touched station-hour
    (site, station, hour) the offset ``cut`` from which its unit offsets are replaced by ``units``."""

    worker: list[Element] = field(default_factory=list)
    station: list[StationElement] = field(default_factory=list)
    units: dict[tuple[str, str, datetime], tuple[int, list[int]]] = field(default_factory=dict)
    buckets: list[datetime] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.worker and not self.station and not self.units


# A pending worker key, as the refresher coalesces it: the worker, and the
# station when the worker is 'unknown' ('' otherwise).
_WK = "{a}.worker_id = {k}.worker AND ({k}.worker <> 'unknown' OR {a}.station_id = {k}.station)"

_SPANS = """
SELECT worker_id, CASE WHEN worker_id = 'unknown' THEN station_id ELSE '' END, min(min_ts), max(max_ts)
FROM event_invalidations GROUP BY 1, 2, date_bin('1 hour', min_ts, %(origin)s) ORDER BY 1, 2, 3
"""

_KEYS = (
    "unnest(%(workers)s::text[], %(stations)s::text[], %(as)s::timestamptz[], %(bs)s::timestamptz[]) "
    "WITH ORDINALITY AS k(worker, station, a, b, i)"
)

# C per span: the span's start, or the state event before it in the production
# partition, in each shadow partition the span has events of, and (for a
# deleted event, whose partition is unknown: no event left at its time) in any
# shadow partition within the gap, as the refresher's range does.
_STARTS = f"""
SELECT k.i, least(k.a, p.ts, m.ts, d.ts)
FROM {_KEYS}
LEFT JOIN LATERAL (
    SELECT max(e.ts) AS ts FROM events e
    WHERE {_WK.format(a="e", k="k")} AND e.ts < k.a AND e.event_type <> 'product_count' AND NOT e.shadow
) p ON true
LEFT JOIN LATERAL (
    SELECT min(q.ts) AS ts FROM (
        SELECT DISTINCT coalesce(e.model_version, '') AS mv FROM events e
        WHERE {_WK.format(a="e", k="k")} AND e.shadow AND e.ts >= k.a AND e.ts <= k.b
          AND e.event_type <> 'product_count'
    ) s CROSS JOIN LATERAL (
        SELECT max(e.ts) AS ts FROM events e
        WHERE {_WK.format(a="e", k="k")} AND e.shadow AND coalesce(e.model_version, '') = s.mv
          AND e.ts < k.a AND e.event_type <> 'product_count'
    ) q
) m ON true
LEFT JOIN LATERAL (
    SELECT max(e.ts) AS ts FROM events e
    WHERE {_WK.format(a="e", k="k")} AND e.shadow AND e.event_type <> 'product_count'
      AND e.ts < k.a AND e.ts >= k.a - %(gap)s * interval '1 second'
      AND NOT EXISTS (SELECT 1 FROM events x WHERE {_WK.format(a="x", k="k")} AND x.ts = k.a)
) d ON true
"""

# The durations of the events in [C, b], derived now by the state rule
# (takt.states, as the refresher derives them), with their stored ones.
_SAME_PARTITION = (
    f"{_WK.format(a='l', k='p')} AND l.shadow = p.shadow "
    "AND (NOT p.shadow OR coalesce(l.model_version, '') = p.mv)"
)
_PART_BY = "k.i, e.shadow, CASE WHEN e.shadow THEN coalesce(e.model_version, '') END"
_DERIVED = f"""
WITH part AS (
    SELECT k.i, k.worker, k.station, k.b, e.event_id, e.ts, e.duration_s, e.effective_duration_s AS old,
           e.shadow, coalesce(e.model_version, '') AS mv,
           {states.next_ts_sql("e", _PART_BY)} AS next_ts
    FROM {_KEYS} CROSS JOIN LATERAL (
        SELECT * FROM events e WHERE {_WK.format(a="e", k="k")} AND e.ts >= k.a
          AND e.ts <= k.b + %(gap)s * interval '1 second' AND e.event_type <> 'product_count' OFFSET 0
    ) e
)
SELECT p.i, p.event_id, p.ts, p.old,
       {states.derived_duration_sql("p", states.later_sql(_SAME_PARTITION))}
FROM part p WHERE p.ts <= p.b
"""

_HOURS = (
    "unnest(%(hw)s::text[], %(hs)s::text[], %(hb)s::timestamptz[], %(hc)s::bigint[]) AS h(worker, station, "
    "bucket, cut)"
)


def _from(arr: str, cut: str) -> str:
    """Slice of a sorted offset array (or its companion) from the first offset >= cut."""
    return f"[width_bucket({cut} - 1, d.{arr}) + 1:]"


# The stored elements of pending worker-hours from their cut on (all of them
# in the region's later hours, cut 0): what the tail replaces.
_STORED = f"""
SELECT d.bucket, d.site_id, d.worker_id, d.station_id, d.model_version, d.shadow, x.k, x.f, x.t, x.c, x.n
FROM {_HOURS}
JOIN rollup_worker_detail d ON d.bucket = h.bucket AND {_WK.format(a="d", k="h")}
CROSS JOIN LATERAL (
    SELECT p.k::text AS k, p.f, p.t, 0::double precision AS c, 0 AS n
    FROM unnest(d.state_kind[width_bucket(h.cut - 1, d.state_from) + 1:],
                d.state_from[width_bucket(h.cut - 1, d.state_from) + 1:],
                d.state_to[width_bucket(h.cut - 1, d.state_from) + 1:]) AS p(k, f, t)
    UNION ALL
    SELECT {codes.quoted(codes.EVENT)}, q.a, q.a, q.c, 0
    FROM unnest(d.event_at[width_bucket(h.cut - 1, d.event_at) + 1:],
                d.event_conf[width_bucket(h.cut - 1, d.event_at) + 1:]) AS q(a, c)
    UNION ALL
    SELECT {codes.quoted(codes.UNITS)}, u.a, u.a, 0, u.n
    FROM unnest(d.unit_at[width_bucket(h.cut - 1, d.unit_at) + 1:],
                d.unit_count[width_bucket(h.cut - 1, d.unit_at) + 1:]) AS u(a, n)
) x
"""

# Does a kept piece (before the cut) of the region's first hour run to the
# hour's end? Then a state from before C reaches the region's later hours.
# Pieces last at most the lookback, so only those starting within it are looked at.
_CROSSING = f"""
SELECT h.worker, h.station, bool_or({HOUR_US}::bigint = ANY(
    d.state_to[width_bucket(%(span)s::bigint - 1, d.state_from) + 1 : width_bucket(h.cut - 1, d.state_from)]))
FROM {_HOURS}
JOIN rollup_worker_detail d ON d.bucket = h.bucket AND {_WK.format(a="d", k="h")}
GROUP BY 1, 2
"""

_EVENTS = f"""
SELECT r.j, e.event_id, e.ts, coalesce(e.site_id, ''), e.worker_id, e.station_id, e.event_type,
       coalesce(e.model_version, ''), e.shadow, e.count, e.confidence, e.effective_duration_s
FROM unnest(%(rw)s::text[], %(rs)s::text[], %(rl)s::timestamptz[], %(re)s::timestamptz[])
     WITH ORDINALITY AS r(worker, station, lo, hi, j)
CROSS JOIN LATERAL (
    SELECT * FROM events e WHERE {_WK.format(a="e", k="r")} AND e.ts >= r.lo AND e.ts < r.hi OFFSET 0
) e
"""

_SH = (
    "unnest(%(ss)s::text[], %(st)s::text[], %(sb)s::timestamptz[], %(sc)s::bigint[]) AS s(site, station, "
    "bucket, cut)"
)

# Current pieces of every worker at touched station-hours from the cut on
# (stored ones; those the tail replaces are left out), the stored islands
# from the cut on, and the stored unit offsets from the cut on.
_STATION_PIECES = f"""
SELECT s.site, s.station, s.bucket, p.k::text, p.f, p.t
FROM {_SH}
JOIN rollup_worker_detail d ON d.bucket = s.bucket AND d.station_id = s.station AND d.site_id = s.site
     AND NOT d.shadow AND coalesce(d.hi_us, {HOUR_US}) > s.cut
LEFT JOIN (SELECT * FROM {_HOURS}) h ON h.bucket = d.bucket AND {_WK.format(a="d", k="h")}
CROSS JOIN LATERAL unnest(
    d.state_kind[width_bucket(s.cut - %(span)s::bigint - 1, d.state_from) + 1:],
    d.state_from[width_bucket(s.cut - %(span)s::bigint - 1, d.state_from) + 1:],
    d.state_to[width_bucket(s.cut - %(span)s::bigint - 1, d.state_from) + 1:]) AS p(k, f, t)
WHERE p.t > s.cut AND (h.cut IS NULL OR p.f < h.cut)
"""

_STATION_STORED = f"""
SELECT s.site, s.station, s.bucket, d.part, i.k::text, i.f, i.t, d.unit_at{_from("unit_at", "s.cut")}
FROM {_SH}
JOIN rollup_station_detail d ON d.bucket = s.bucket AND d.station_id = s.station AND d.site_id = s.site
LEFT JOIN LATERAL unnest(d.island_kind, d.island_from, d.island_to) AS i(k, f, t) ON i.t > s.cut
"""


@dataclass(slots=True)
class _Region:
    worker: str
    station: str
    c: datetime
    r: datetime

    @property
    def first(self) -> datetime:
        return floor_hour(self.c)

    @property
    def end(self) -> datetime:
        return floor_hour(self.r) + HOUR


def _us(x: datetime, bucket: datetime) -> int:
    return (x - bucket) // MICROSECOND


def _merge_spans(rows: Iterable[tuple[str, str, datetime, datetime]], gap: timedelta) -> list[_Region]:
    spans: list[_Region] = []
    for worker, station, a, b in sorted(rows):
        last = spans[-1] if spans else None
        if last and (last.worker, last.station) == (worker, station) and a <= last.r + gap:
            last.r = max(last.r, b)
        else:
            spans.append(_Region(worker, station, a, b))
    return spans


def _params(spans: Sequence[_Region], gap_s: float) -> dict[str, Any]:
    return {
        "workers": [s.worker for s in spans],
        "stations": [s.station for s in spans],
        "as": [s.c for s in spans],
        "bs": [s.r for s in spans],
        "gap": gap_s,
    }


# Every change a tail depends on moves this key in the same transaction: new or
# deleted events add an invalidation (its id), a refresh round deletes some and
# stamps rollup_meta, a rebuild stamps it. Equal keys, equal tails: concurrent
# and successive reads of one state share one computation.
_STATE = """
SELECT (SELECT max(id) FROM event_invalidations), (SELECT count(*) FROM event_invalidations),
       (SELECT refreshed_at FROM rollup_meta WHERE id = 1)
"""
_cache: dict[tuple[Any, ...], Tail] = {}
_cache_lock = Lock()


def load_tail(conn: psycopg.Connection[Any], gap_s: float) -> Tail:
    """The corrections for everything pending in the current snapshot (see the module docstring)."""
    state = conn.execute(_STATE).fetchone()
    if state is None or state[1] == 0:
        return Tail()
    info = conn.info
    key = (info.host, info.port, info.dbname, gap_s, *state)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    tail = _compute(conn, gap_s)
    with _cache_lock:
        _cache.clear()  # one state per process is what concurrent readers share
        _cache[key] = tail
    return tail


def _compute(conn: psycopg.Connection[Any], gap_s: float) -> Tail:
    rows = conn.execute(_SPANS, {"origin": ORIGIN}).fetchall()
    if not rows:
        return Tail()
    gap = timedelta(seconds=gap_s)
    spans = _merge_spans(rows, gap)
    params = _params(spans, gap_s)
    starts = dict(conn.execute(_STARTS, params).fetchall())
    regions = [_Region(s.worker, s.station, starts[i + 1] or s.c, s.r) for i, s in enumerate(spans)]
    derived: dict[tuple[Any, datetime], float] = {}
    params["as"] = [r.c for r in regions]
    for i, event_id, ts, old, eff in conn.execute(_DERIVED, params).fetchall():
        derived[(event_id, ts)] = float(eff)
        region = regions[i - 1]
        longest = max(float(eff), float(old or 0.0))
        region.r = max(region.r, ts + timedelta(seconds=longest))
    for region in regions:
        # An hour-aligned C would make a state continuing from the previous hour
        # look like one starting at C: cut one microsecond earlier instead.
        if region.c == floor_hour(region.c):
            region.c -= MICROSECOND
    regions = _merge_regions(regions)
    return _build(conn, regions, derived, lookback_s(conn))


def _merge_regions(regions: list[_Region]) -> list[_Region]:
    out: list[_Region] = []
    for region in sorted(regions, key=lambda r: (r.worker, r.station, r.c)):
        last = out[-1] if out else None
        same = last is not None and (last.worker, last.station) == (region.worker, region.station)
        if last is not None and same and region.first < last.end:
            last.r = max(last.r, region.r)
        else:
            out.append(region)
    return out


def _pieces(ts: datetime, end: datetime) -> Iterable[tuple[datetime, int, int]]:
    """(hour, from, to) of the interval [ts, end) split at hour boundaries."""
    hour = floor_hour(ts)
    while hour < end:
        yield hour, _us(max(ts, hour), hour), _us(min(end, hour + HOUR), hour)
        hour += HOUR


def _build(
    conn: psycopg.Connection[Any],
    regions: list[_Region],
    derived: dict[tuple[Any, datetime], float],
    lookback: float,
) -> Tail:
    tail = Tail()
    lookback_us = round(lookback * 1e6)
    # Pending worker-hours and their cut: stored elements at or after it are replaced (C's offset in
    # the region's first hour, which is never 0, see load_tail; all of them in its later hours).
    hours = [
        (r.worker, r.station, h, _us(r.c, h) if h == r.first else 0)
        for r in regions
        for h in _hour_range(r.first, r.end)
    ]
    hour_params = {
        "hw": [h[0] for h in hours],
        "hs": [h[1] for h in hours],
        "hb": [h[2] for h in hours],
        "hc": [h[3] for h in hours],
    }
    firsts = [h for h in hours if h[3]]
    crossing: set[tuple[str, str]] = set()
    if firsts:
        first_params = {
            "hw": [h[0] for h in firsts],
            "hs": [h[1] for h in firsts],
            "hb": [h[2] for h in firsts],
            "hc": [h[3] for h in firsts],
            "span": HOUR_US - lookback_us,
        }
        crossing = {(w, s) for w, s, hit in conn.execute(_CROSSING, first_params).fetchall() if hit}
    for bucket, site, worker, station, model, shadow, kind, f, t, conf, n in conn.execute(
        _STORED, hour_params
    ).fetchall():
        tail.worker.append(
            Element(-1, bucket, site, worker, station, model, bool(shadow), kind, f, t, float(conf), int(n))
        )
    lows = [
        r.first + HOUR - timedelta(seconds=lookback) if (r.worker, r.station) in crossing else r.c
        for r in regions
    ]
    rows = conn.execute(
        _EVENTS,
        {
            "rw": [r.worker for r in regions],
            "rs": [r.station for r in regions],
            "rl": [min(lo, r.c) for lo, r in zip(lows, regions, strict=True)],
            "re": [r.end for r in regions],
        },
    ).fetchall()
    for j, event_id, ts, site, worker, station, etype, model, shadow, count, conf, stored in rows:
        region = regions[j - 1]
        after = ts >= region.c
        key = (site, worker, station, model, bool(shadow))
        if after:
            bucket = floor_hour(ts)
            at = _us(ts, bucket)
            tail.worker.append(Element(1, bucket, *key, codes.EVENT, at, at, float(conf)))
            if etype == "product_count" and count > 0:
                tail.worker.append(Element(1, bucket, *key, codes.UNITS, at, at, 0.0, int(count)))
        kind = codes.STATE_CODE.get(etype)
        if kind is None:
            continue
        eff = derived.get((event_id, ts), float(stored or 0.0)) if after else float(stored or 0.0)
        if eff <= 0:
            continue
        end = ts + timedelta(microseconds=round(eff * 1e6))
        for hour, f, t in _pieces(ts, min(end, region.end)):
            if hour >= region.first and (after or hour > region.first) and t > f:
                tail.worker.append(Element(1, hour, *key, kind, f, t))
    _stations(conn, tail, hour_params, lookback_us)
    tail.buckets = sorted({e.bucket for e in tail.worker} | {e.bucket for e in tail.station})
    return tail


def _hour_range(lo: datetime, hi: datetime) -> Iterable[datetime]:
    while lo < hi:
        yield lo
        lo += HOUR


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for f, t in sorted(spans):
        if out and f <= out[-1][1]:
            if t > out[-1][1]:
                out[-1] = (out[-1][0], t)
        else:
            out.append((f, t))
    return out


def _stations(
    conn: psycopg.Connection[Any], tail: Tail, hour_params: dict[str, Any], lookback_us: int
) -> None:
    """Station corrections: union islands from each touched station-hour's cut on, events and units."""
    touched = [e for e in tail.worker if not e.shadow]
    cuts: dict[tuple[str, str, datetime], int] = {}
    for e in touched:
        key = (e.site, e.station, e.bucket)
        cuts[key] = min(cuts.get(key, HOUR_US), e.f)
    if not cuts:
        return
    keys = sorted(cuts)
    params = {
        **hour_params,
        "ss": [k[0] for k in keys],
        "st": [k[1] for k in keys],
        "sb": [k[2] for k in keys],
        "sc": [cuts[k] for k in keys],
        "span": lookback_us,
    }
    pieces: dict[tuple[str, str, datetime], list[tuple[str, int, int]]] = defaultdict(list)
    for site, station, bucket, kind, f, t in conn.execute(_STATION_PIECES, params).fetchall():
        pieces[(site, station, bucket)].append((kind, f, t))
    units: dict[tuple[str, str, datetime], Counter[int]] = defaultdict(Counter)
    # One row per island (or per stored part without islands from the cut on): a part's units once.
    seen: set[tuple[str, str, datetime, int]] = set()
    for site, station, bucket, part, kind, f, t, unit_at in conn.execute(_STATION_STORED, params).fetchall():
        key = (site, station, bucket)
        cut = cuts[key]
        if kind is not None:
            tail.station.append(StationElement(-1, bucket, site, station, kind, max(f, cut), t))
        if (*key, part) not in seen:
            seen.add((*key, part))
            units[key].update(unit_at or [])
    for e in touched:
        key = (e.site, e.station, e.bucket)
        if e.kind in codes.STATE_NAME and e.sign > 0:
            pieces[key].append((e.kind, e.f, e.t))
        elif e.kind in (codes.EVENT, codes.UNITS):
            tail.station.append(StationElement(e.sign, e.bucket, e.site, e.station, e.kind, e.f, e.f, e.n))
            if e.kind == codes.UNITS:
                units[key][e.f] += e.sign
    for key, cut in cuts.items():
        site, station, bucket = key
        spans = [(k, max(f, cut), t) for k, f, t in pieces.get(key, []) if t > cut]
        for kind, members in codes.ISLAND_MEMBERS.items():
            for f, t in _union([(f, t) for k, f, t in spans if k in members]):
                tail.station.append(StationElement(1, bucket, site, station, kind, f, t))
        live = units.get(key, Counter())
        tail.units[key] = (cut, sorted(live.elements()))


def parts(tail: Tail, windows: Sequence[Labelled]) -> dict[datetime, list[tuple[int, int, int]]]:
    """Per pending hour, the (label, from, to) offsets of every window's part of it."""
    out: dict[datetime, list[tuple[int, int, int]]] = defaultdict(list)
    buckets = tail.buckets
    for label, lo, hi in windows:
        i = bisect.bisect_left(buckets, floor_hour(lo))
        while i < len(buckets) and buckets[i] < hi:
            b = buckets[i]
            a, z = max(_us(lo, b), 0), min(_us(hi, b), HOUR_US)
            if a < z:
                out[b].append((label, a, z))
            i += 1
    return out


def clipped(f: int, t: int, a: int, z: int) -> float:
    return max(0, min(t, z) - max(f, a)) / 1e6
