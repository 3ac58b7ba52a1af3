"""Rollups for fast exact windows: per-hour detail of workers and stations, model versions per hour and day.

Revision ID: 0005_rollup_detail
Revises: 0004_models
Create Date: 2026-11-24

- ``rollup_worker_detail`` (per hour × site × worker × model version × shadow
  flag) and ``rollup_station_detail`` (per hour × site × station, production
  events): the hour's state pieces (a station's: the union's islands per kind)
  and its events, as microsecond offsets from the hour. A window edge inside an
  hour is summed from them exactly, at any precision, without reading
  ``events``; the station detail also serves cycle times.
- ``rollup_model_hour`` and ``rollup_model_day``: ``rollup_hour`` summed per
  model version and shadow flag, for ``/metrics/models``.

All are maintained by ``takt.store.rollups`` like the other rollups, and are
hypertables where TimescaleDB is installed. The upgrade fills them from what is
stored (durations already derived, ``rollup_hour``); the SQL is frozen here, a
copy of ``takt.store.rollups`` at this revision, so later code cannot change
what this migration does.
"""

from datetime import UTC, datetime, timedelta

from alembic import op
from sqlalchemy import text

revision = "0005_rollup_detail"
down_revision = "0004_models"
branch_labels = None
depends_on = None

TABLES = ("rollup_worker_detail", "rollup_station_detail", "rollup_model_hour", "rollup_model_day")
KEY_INDEXES = (
    ("rollup_hour", "worker_id"),
    ("rollup_worker_hour", "worker_id"),
    ("rollup_worker_detail", "worker_id"),
    ("rollup_worker_detail", "station_id"),
    ("rollup_station_hour", "station_id"),
    ("rollup_station_detail", "station_id"),
)
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
CHUNK = timedelta(days=7)


def _us(interval: str) -> str:
    return f"(extract(epoch FROM {interval}) * 1000000)::bigint"


# Events of [lo - lookback, hi), their state pieces per hour and their points.
PIECES_AND_POINTS = """
src AS MATERIALIZED (
    SELECT e.event_id, e.ts, coalesce(e.site_id, '') AS site_id, e.worker_id, e.station_id, e.event_type,
           coalesce(e.model_version, '') AS model_version, e.shadow, e.count, e.confidence,
           e.ts + coalesce(e.effective_duration_s, 0) * interval '1 second' AS ends,
           CAST(:lo AS timestamptz) AS lo, CAST(:hi AS timestamptz) AS hi
    FROM events e
    WHERE e.ts >= CAST(:lo AS timestamptz) - :lookback * interval '1 second'
      AND e.ts < CAST(:hi AS timestamptz)
), pieces AS (
    SELECT b.bucket, e.event_id, e.site_id, e.worker_id, e.station_id, e.event_type, e.model_version,
           e.shadow, greatest(e.ts, b.bucket) AS s, least(e.ends, b.bucket + interval '1 hour') AS en
    FROM src e CROSS JOIN LATERAL generate_series(
        greatest(date_bin('1 hour', e.ts, CAST(:origin AS timestamptz)), e.lo),
        least(e.ends, e.hi) - interval '1 microsecond', interval '1 hour') AS b(bucket)
    WHERE e.event_type <> 'product_count' AND e.ends > e.ts AND e.ends > e.lo
), points AS (
    SELECT date_bin('1 hour', ts, CAST(:origin AS timestamptz)) AS bucket, * FROM src WHERE ts >= lo
)"""


WORKER_DETAIL = f"""
WITH {PIECES_AND_POINTS}
INSERT INTO rollup_worker_detail (bucket, site_id, worker_id, station_id, model_version, shadow, state_kind,
                                  state_from, state_to, event_at, event_conf, unit_at, unit_count)
SELECT bucket, site_id, worker_id, station_id, model_version, shadow,
       coalesce(state_kind, '{{}}'), coalesce(state_from, '{{}}'), coalesce(state_to, '{{}}'),
       coalesce(event_at, '{{}}'), coalesce(event_conf, '{{}}'), coalesce(unit_at, '{{}}'),
       coalesce(unit_count, '{{}}')
FROM (
    SELECT bucket, site_id, worker_id, station_id, model_version, shadow,
           array_agg(left(event_type, 1)::"char" ORDER BY s, event_id) AS state_kind,
           array_agg({_us("s - bucket")} ORDER BY s, event_id) AS state_from,
           array_agg({_us("en - bucket")} ORDER BY s, event_id) AS state_to
    FROM pieces GROUP BY bucket, site_id, worker_id, station_id, model_version, shadow
) p
FULL JOIN (
    SELECT bucket, site_id, worker_id, station_id, model_version, shadow,
           array_agg({_us("ts - bucket")} ORDER BY ts, event_id) AS event_at,
           array_agg(confidence ORDER BY ts, event_id) AS event_conf,
           array_agg({_us("ts - bucket")} ORDER BY ts, event_id)
               FILTER (WHERE event_type = 'product_count' AND count > 0) AS unit_at,
           array_agg(count ORDER BY ts, event_id)
               FILTER (WHERE event_type = 'product_count' AND count > 0) AS unit_count
    FROM points GROUP BY bucket, site_id, worker_id, station_id, model_version, shadow
) q USING (bucket, site_id, worker_id, station_id, model_version, shadow)
"""

# From the worker detail rows of each station-hour (production rows): union
# islands per kind by a sweep in start order, the station's events and units.
STATION_DETAIL = """
WITH detail AS MATERIALIZED (
    SELECT * FROM rollup_worker_detail
    WHERE NOT shadow AND bucket >= CAST(:lo AS timestamptz) AND bucket < CAST(:hi AS timestamptz)
), swept AS (
    SELECT bucket, site_id, station_id, f, k,
           max(t) OVER w AS prev_b, max(t) OVER p AS last_b,
           max(t) FILTER (WHERE k <> 'a') OVER w AS prev_o, max(t) FILTER (WHERE k <> 'a') OVER p AS last_o,
           max(t) FILTER (WHERE k = 'w') OVER w AS prev_w, max(t) FILTER (WHERE k = 'w') OVER p AS last_w
    FROM detail CROSS JOIN LATERAL unnest(state_kind, state_from, state_to) AS x(k, f, t)
    WINDOW w AS (PARTITION BY bucket, site_id, station_id ORDER BY f, t
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
           p AS (PARTITION BY bucket, site_id, station_id)
), starts AS (
    SELECT bucket, site_id, station_id, i.kind, f, i.prev, i.last
    FROM swept CROSS JOIN LATERAL (
        VALUES ('b'::"char", prev_b, last_b, true), ('o'::"char", prev_o, last_o, k <> 'a'),
               ('w'::"char", prev_w, last_w, k = 'w')
    ) AS i(kind, prev, last, member)
    WHERE i.member AND (i.prev IS NULL OR f > i.prev)
), islands AS (
    SELECT bucket, site_id, station_id, kind, f,
           coalesce(lead(prev) OVER (PARTITION BY bucket, site_id, station_id, kind ORDER BY f), last) AS t
    FROM starts
), unions AS (
    SELECT bucket, site_id, station_id, array_agg(kind ORDER BY kind, f) AS island_kind,
           array_agg(f ORDER BY kind, f) AS island_from, array_agg(t ORDER BY kind, f) AS island_to
    FROM islands GROUP BY bucket, site_id, station_id
), counts AS (
    SELECT bucket, site_id, station_id, array_agg(t ORDER BY t) FILTER (WHERE t IS NOT NULL) AS event_at
    FROM detail LEFT JOIN LATERAL unnest(event_at) AS e(t) ON true
    GROUP BY bucket, site_id, station_id
), units AS (
    SELECT bucket, site_id, station_id, array_agg(t ORDER BY t, n) AS unit_at,
           array_agg(n ORDER BY t, n) AS unit_count
    FROM detail CROSS JOIN LATERAL unnest(unit_at, unit_count) AS u(t, n)
    GROUP BY bucket, site_id, station_id
)
INSERT INTO rollup_station_detail (bucket, site_id, station_id, island_kind, island_from, island_to, event_at,
                                   unit_at, unit_count)
SELECT bucket, site_id, station_id, coalesce(island_kind, '{}'), coalesce(island_from, '{}'),
       coalesce(island_to, '{}'), coalesce(event_at, '{}'), coalesce(unit_at, '{}'),
       coalesce(unit_count, '{}')
FROM counts LEFT JOIN unions USING (bucket, site_id, station_id)
LEFT JOIN units USING (bucket, site_id, station_id)
"""

MODEL_HOUR = """
INSERT INTO rollup_model_hour (bucket, site_id, model_version, shadow, working_s, idle_s, absent_s, units,
                               events, conf_sum)
SELECT bucket, site_id, model_version, shadow,
       coalesce(sum(seconds) FILTER (WHERE event_type = 'working'), 0),
       coalesce(sum(seconds) FILTER (WHERE event_type = 'idle'), 0),
       coalesce(sum(seconds) FILTER (WHERE event_type = 'absent'), 0),
       sum(units), sum(events), sum(conf_sum)
FROM rollup_hour GROUP BY bucket, site_id, model_version, shadow
"""

MODEL_DAY = """
INSERT INTO rollup_model_day (bucket, site_id, model_version, shadow, working_s, idle_s, absent_s, units,
                              events, conf_sum)
SELECT date_bin('1 day', bucket, CAST(:origin AS timestamptz)), site_id, model_version, shadow,
       sum(working_s), sum(idle_s), sum(absent_s), sum(units), sum(events), sum(conf_sum)
FROM rollup_model_hour GROUP BY 1, site_id, model_version, shadow
"""


def upgrade() -> None:
    bind = op.get_bind()
    has_timescale = bind.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).first()

    # Offsets are microseconds from the hour (bucket): exact, as timestamps are.
    # States: kind 'w' working, 'i' idle, 'a' absent, pieces clipped to the hour,
    # in start order. Events: every event whose timestamp is in the hour; units:
    # product_count events with count > 0.
    op.execute("""
        CREATE TABLE rollup_worker_detail (
            bucket         timestamptz NOT NULL,
            site_id        text NOT NULL,
            worker_id      text NOT NULL,
            station_id     text NOT NULL,
            model_version  text NOT NULL,
            shadow         boolean NOT NULL,
            state_kind     "char"[] NOT NULL,
            state_from     bigint[] NOT NULL,
            state_to       bigint[] NOT NULL,
            event_at       bigint[] NOT NULL,
            event_conf     double precision[] NOT NULL,
            unit_at        bigint[] NOT NULL,
            unit_count     integer[] NOT NULL,
            PRIMARY KEY (bucket, site_id, worker_id, station_id, model_version, shadow)
        )""")
    # Production events only. Islands of the union per kind: 'o' occupied
    # (working or idle), 'w' working, 'b' observed (any state), disjoint within
    # a kind, ordered by kind and start.
    op.execute("""
        CREATE TABLE rollup_station_detail (
            bucket       timestamptz NOT NULL,
            site_id      text NOT NULL,
            station_id   text NOT NULL,
            island_kind  "char"[] NOT NULL,
            island_from  bigint[] NOT NULL,
            island_to    bigint[] NOT NULL,
            event_at     bigint[] NOT NULL,
            unit_at      bigint[] NOT NULL,
            unit_count   integer[] NOT NULL,
            PRIMARY KEY (bucket, site_id, station_id)
        )""")
    # Arrays of a busy hour exceed the TOAST threshold: store them out of line
    # without trying to compress them (microsecond offsets barely compress and
    # compressing costs the refresher more than the space saved).
    for table, arrays in (
        (
            "rollup_worker_detail",
            ("state_kind", "state_from", "state_to", "event_at", "event_conf", "unit_at", "unit_count"),
        ),
        (
            "rollup_station_detail",
            ("island_kind", "island_from", "island_to", "event_at", "unit_at", "unit_count"),
        ),
    ):
        op.execute(
            f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} SET STORAGE EXTERNAL" for c in arrays)
        )
    # Per key and hour: the refresher deletes and rebuilds the hours of the
    # workers and stations a round touched; cycle times read one station's hours.
    for table, key in KEY_INDEXES:
        op.execute(f"CREATE INDEX {table}_{key.removesuffix('_id')} ON {table} ({key}, bucket)")
    op.execute("""
        CREATE TABLE rollup_model_hour (
            bucket         timestamptz NOT NULL,
            site_id        text NOT NULL,
            model_version  text NOT NULL,
            shadow         boolean NOT NULL,
            working_s      double precision NOT NULL DEFAULT 0,
            idle_s         double precision NOT NULL DEFAULT 0,
            absent_s       double precision NOT NULL DEFAULT 0,
            units          bigint NOT NULL DEFAULT 0,
            events         bigint NOT NULL DEFAULT 0,
            conf_sum       double precision NOT NULL DEFAULT 0,
            PRIMARY KEY (bucket, site_id, model_version, shadow)
        )""")
    op.execute("CREATE TABLE rollup_model_day (LIKE rollup_model_hour INCLUDING ALL)")
    if has_timescale:
        for table in TABLES:
            op.execute(
                f"SELECT create_hypertable('{table}', 'bucket', chunk_time_interval => interval '7 days')"
            )

    # Backfill from what is stored. Events whose durations are not derived yet
    # are in event_invalidations; the refresher rebuilds their hours.
    op.execute(text(MODEL_HOUR))
    op.execute(text(MODEL_DAY).bindparams(origin=ORIGIN))
    row = bind.execute(
        text(
            "SELECT min(ts), max(ts + coalesce(effective_duration_s, 0) * interval '1 second'), "
            "(SELECT max_duration_s FROM rollup_meta WHERE id = 1) FROM events"
        )
    ).first()
    if row is None or row[0] is None:
        return
    first, last, lookback = row
    lo = ORIGIN + ((first - ORIGIN) // timedelta(days=1)) * timedelta(days=1)
    end = ORIGIN + ((last - ORIGIN) // timedelta(hours=1) + 2) * timedelta(hours=1)
    while lo < end:
        hi = min(lo + CHUNK, end)
        params = {"lo": lo, "hi": hi, "origin": ORIGIN, "lookback": float(lookback or 0)}
        op.execute(text(WORKER_DETAIL).bindparams(**params))
        op.execute(text(STATION_DETAIL).bindparams(lo=lo, hi=hi))
        lo = hi


def downgrade() -> None:
    for table, key in KEY_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {table}_{key.removesuffix('_id')}")
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table}")
