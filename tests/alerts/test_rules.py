"""Rule decisions (pure) and each condition against a real database at a frozen instant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import psycopg
import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from api.alerts.evaluate import ALERT_LOCK, AlertEvaluator, evaluate
from api.alerts.rules import (
    Finding,
    QuietHours,
    ShiftTime,
    Verdict,
    counted_seconds,
    in_quiet_hours,
    plan,
    shift_time,
)
from api.security import Role, create_token
from api.settings import SiteCalendar
from takt.store.db import alembic_config, upgrade

# A fixed instant: these tests never read the clock. 2026-03-10 is a Tuesday.
AT = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
CALENDAR = SiteCalendar.model_validate(
    {
        "timezone": "Europe/Berlin",
        "shifts": [
            {"name": "day", "start": "06:00", "end": "14:00", "breaks": [{"start": "11:30", "end": "12:00"}]}
        ],
    }
)


def test_shift_time_counts_shifts_outside_breaks() -> None:
    # 10:00 UTC is 11:00 in Berlin (CET): in the shift.
    assert shift_time(CALENDAR, AT) is ShiftTime.COUNTED
    assert shift_time(CALENDAR, AT + timedelta(minutes=45)) is ShiftTime.BREAK
    assert shift_time(CALENDAR, AT + timedelta(hours=4)) is ShiftTime.OFF
    assert shift_time(None, AT + timedelta(hours=4)) is ShiftTime.COUNTED
    # 10:00-11:30 UTC: 30 min of shift, 30 min of break, 30 min of shift.
    assert counted_seconds(CALENDAR, AT, AT + timedelta(minutes=90)) == 60 * 60
    assert counted_seconds(CALENDAR, AT + timedelta(hours=3), AT + timedelta(hours=5)) == 0


def test_quiet_hours_may_cross_midnight() -> None:
    night = [QuietHours(start=time(22), end=time(6))]
    berlin = "Europe/Berlin"
    assert in_quiet_hours(night, berlin, datetime(2026, 3, 10, 22, 30, tzinfo=UTC))
    assert in_quiet_hours(night, berlin, datetime(2026, 3, 10, 4, 30, tzinfo=UTC))
    assert not in_quiet_hours(night, berlin, AT)
    assert not in_quiet_hours([], berlin, AT)
    assert in_quiet_hours([QuietHours(start=time(10), end=time(12))], berlin, AT)


subjects = st.sets(st.sampled_from("abcdefgh"))


@given(open_now=subjects, firing=subjects, held=subjects, allow_new=st.booleans())
def test_plan_opens_each_episode_once_and_resolves_only_what_cleared(
    open_now: set[str], firing: set[str], held: set[str], allow_new: bool
) -> None:
    verdict = Verdict(firing={s: Finding(s, AT, s) for s in firing}, held=frozenset(held))
    p = plan(sorted(open_now), verdict, allow_new=allow_new)
    opened = {f.subject for f in p.open}
    assert opened == ((firing - open_now) if allow_new else set())
    assert set(p.resolve) == open_now - firing - held
    # Applying the plan and planning again with the same verdict changes nothing.
    after = (open_now | opened) - set(p.resolve)
    again = plan(sorted(after), verdict, allow_new=allow_new)
    assert again.open == [] and again.resolve == []


@pytest.fixture
def conn(fresh_database: str) -> Any:
    upgrade(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as c:
        yield c


def _rule(conn: psycopg.Connection[Any], **columns: Any) -> int:
    columns = {"site_id": "site-a", **columns}
    if "quiet_hours" in columns:
        columns["quiet_hours"] = Jsonb(columns["quiet_hours"])
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    row = conn.execute(
        f"INSERT INTO alert_rules ({names}) VALUES ({marks}) RETURNING rule_id", list(columns.values())
    ).fetchone()
    assert row is not None
    return int(row[0])


def _event(
    conn: psycopg.Connection[Any],
    kind: str,
    at: datetime,
    station: str = "S1",
    count: int = 0,
    sku: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO events (event_id, ts, worker_id, station_id, event_type, confidence, count, site_id, "
        "sku) VALUES (%s, %s, 'W1', %s, %s, 0.9, %s, 'site-a', %s)",
        (uuid.uuid4(), at, station, kind, count, sku),
    )


def _open(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute("SELECT subject, summary FROM alert_incidents WHERE resolved_at IS NULL").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _round(
    conn: psycopg.Connection[Any], at: datetime, calendar: SiteCalendar | None = None
) -> dict[str, int]:
    with conn.transaction():
        return evaluate(conn, at, {"site-a": calendar} if calendar else {}, 600)


def test_station_idle_counts_only_shift_time_and_holds_over_a_break(conn: psycopg.Connection[Any]) -> None:
    _rule(conn, kind="station_idle", minutes=20)
    # Idle from 10:00 UTC (11:00 Berlin): 30 min of shift, then the 11:30-12:00 break.
    _event(conn, "working", AT - timedelta(minutes=30))
    _event(conn, "idle", AT)
    # Heartbeat-like idle segments keep the station heard from (max_state_gap_s is 600 s).
    for m in range(5, 80, 5):
        conn.execute(
            "INSERT INTO events (event_id, ts, worker_id, station_id, event_type, confidence, duration_s, "
            "site_id) "
            "VALUES (%s, %s, 'W1', 'S1', 'idle', 0.9, 300, 'site-a')",
            (uuid.uuid4(), AT + timedelta(minutes=m - 5)),
        )
    assert _round(conn, AT + timedelta(minutes=15), CALENDAR)["opened"] == 0
    assert _round(conn, AT + timedelta(minutes=21), CALENDAR)["opened"] == 1
    assert "Station S1 idle for 21 min" in _open(conn)["S1"]
    # In the break: held open, not resolved.
    assert _round(conn, AT + timedelta(minutes=40), CALENDAR)["resolved"] == 0
    assert list(_open(conn)) == ["S1"]
    # Without a calendar every minute counts; the same instant.
    conn.execute("DELETE FROM alert_notifications")
    conn.execute("DELETE FROM alert_incidents")
    assert _round(conn, AT + timedelta(minutes=15))["opened"] == 0
    assert _round(conn, AT + timedelta(minutes=20))["opened"] == 1


def test_station_idle_opens_nothing_in_quiet_hours(conn: psycopg.Connection[Any]) -> None:
    _rule(conn, kind="station_idle", minutes=5, quiet_hours=[{"start": "09:30", "end": "10:30"}])
    _event(conn, "idle", AT - timedelta(minutes=10))
    assert _round(conn, AT)["opened"] == 0
    assert _round(conn, AT + timedelta(minutes=31))["opened"] == 0  # no state heard for > max gap
    _event(conn, "idle", AT + timedelta(minutes=30))
    assert _round(conn, AT + timedelta(minutes=36))["opened"] == 1


def test_rate_below(conn: psycopg.Connection[Any]) -> None:
    _rule(conn, kind="rate_below", station_id="S1", threshold=30, window_minutes=60)
    for m in range(0, 60, 3):  # 20 units in the hour before AT
        _event(conn, "product_count", AT - timedelta(minutes=m, seconds=30), count=1)
    assert _round(conn, AT)["opened"] == 1
    assert "20.0 units/h" in _open(conn)["S1"]
    for m in range(0, 60, 6):
        _event(conn, "product_count", AT - timedelta(minutes=m, seconds=10), count=1)
    assert _round(conn, AT)["resolved"] == 1


def _target(
    conn: psycopg.Connection[Any], station: str, cycle_s: float, since: datetime, sku: str = ""
) -> None:
    conn.execute(
        "INSERT INTO station_targets (station_id, sku, effective_from, ideal_cycle_time_s, set_by) "
        "VALUES (%s, %s, %s, %s, 'test')",
        (station, sku, since, cycle_s),
    )


def test_behind_target_compares_units_with_what_the_targets_ask(conn: psycopg.Connection[Any]) -> None:
    _rule(conn, kind="behind_target", station_id="S1", threshold=20, window_minutes=60)
    # No target in force: nothing to be behind, nothing opens.
    assert _round(conn, AT)["opened"] == 0
    # 60 s per unit: the hour asks for 60 units; 20 % behind fires below 48.
    _target(conn, "S1", 60.0, AT - timedelta(days=1))
    for m in range(0, 60, 2):  # 30 units in the hour before AT
        _event(conn, "product_count", AT - timedelta(minutes=m, seconds=30), count=1)
    assert _round(conn, AT)["opened"] == 1
    assert "30 units in 60 min against a target of 60.0, 50 % behind" in _open(conn)["S1"]
    for m in range(0, 60, 3):  # 20 more: 50 of 60, within 20 %
        _event(conn, "product_count", AT - timedelta(minutes=m, seconds=10), count=1)
    assert _round(conn, AT)["resolved"] == 1
    # A target changed half an hour ago (to 30 s) asks for 30 + 60 = 90 units: 50 is behind again.
    _target(conn, "S1", 30.0, AT - timedelta(minutes=30))
    assert _round(conn, AT)["opened"] == 1
    assert "against a target of 90.0" in _open(conn)["S1"]


def test_behind_target_weights_the_target_by_the_skus_made_as_station_metrics_do(
    conn: psycopg.Connection[Any],
) -> None:
    """Station-wide 60 s a unit (60 units an hour), SKU "fast" 20 s, "slow" 120 s: the hour's target
    is its time at the mean ideal cycle time of the units made (docs/metrics.md, "Target periods"),
    so 60 fast units are behind (target 180) and 35 slow ones are not (target 30); the station-wide
    figure (60) would say the opposite of both."""
    _rule(conn, kind="behind_target", station_id="S1", threshold=20, window_minutes=60)
    since = AT - timedelta(days=1)
    _target(conn, "S1", 60.0, since)
    _target(conn, "S1", 20.0, since, sku="fast")
    _target(conn, "S1", 120.0, since, sku="slow")
    for m in range(60):
        _event(conn, "product_count", AT - timedelta(minutes=m, seconds=30), count=1, sku="fast")
    assert _round(conn, AT)["opened"] == 1
    assert "60 units in 60 min against a target of 180.0, 67 % behind" in _open(conn)["S1"]
    details = conn.execute("SELECT details FROM alert_incidents WHERE resolved_at IS NULL").fetchone()
    assert details is not None and details[0]["target_units"] == 180.0

    conn.execute("DELETE FROM events")
    for m in range(35):
        _event(conn, "product_count", AT - timedelta(minutes=m, seconds=40), count=1, sku="slow")
    # 35 slow units: 4,200 s of ideal time in the hour, so the hour asks for 3,600 × 35 / 4,200 = 30.
    assert _round(conn, AT)["resolved"] == 1
    assert _open(conn) == {}


def test_gateway_backlog_drift_and_camera_conditions(conn: psycopg.Connection[Any]) -> None:
    _rule(conn, kind="gateway_backlog", minutes=10, threshold=100)
    _rule(conn, kind="drift_flag")
    _rule(conn, kind="camera_view_wrong")
    statuses = {
        "gw-old": {
            "backlog": 500,
            "oldest_buffered_age_s": 900,
            "cameras": [{"camera_id": "c1", "view": "moved"}],
        },
        "gw-new": {"backlog": 500, "oldest_buffered_age_s": 60, "cameras": {"c2": {"view": "ok"}}},
        "gw-small": {"backlog": 5, "oldest_buffered_age_s": 3600, "cameras": "not a list"},
        "gw-odd": {"backlog": "many", "camera_state": "failed", "cameras": [1, None, {"view_ok": False}]},
    }
    for gw, status in statuses.items():
        conn.execute(
            "INSERT INTO gateways (gateway_id, site_id, state, last_seen, status) "
            "VALUES (%s, 'site-a', 'online', %s, %s)",
            (gw, AT, Jsonb(status)),
        )
    conn.execute(
        "INSERT INTO drift_flags (checked_at, site_id, subject_kind, subject_id, metric, value, threshold, "
        "baseline_from, baseline_to, recent_from, recent_to) VALUES (%s, 'site-a', 'station', 'S4', "
        "'confidence_psi', 0.4, 0.2, %s, %s, %s, %s)",
        (AT, AT, AT, AT, AT),
    )
    assert _round(conn, AT)["failed_rules"] == 0
    assert set(_open(conn)) == {
        "gw-old",
        "station:S4:confidence_psi",
        "gw-old/c1",
        "gw-odd/camera",
        "gw-odd/2",
    }
    conn.execute("UPDATE drift_flags SET active = false")
    conn.execute("UPDATE gateways SET status = '{}'::jsonb")
    assert _round(conn, AT + timedelta(seconds=5))["resolved"] == 5
    assert _open(conn) == {}


def test_a_rule_that_fails_costs_only_its_own_round(conn: psycopg.Connection[Any]) -> None:
    _rule(conn, kind="station_idle", minutes=5, line_id="L1")  # no such line: this rule fails
    _rule(conn, kind="gateway_offline", minutes=5)
    conn.execute(
        "INSERT INTO gateways (gateway_id, site_id, state, last_seen) VALUES ('gw', 'site-a', 'offline', %s)",
        (AT - timedelta(minutes=6),),
    )
    counts = _round(conn, AT)
    assert counts["failed_rules"] == 1
    assert counts["opened"] == 1


def test_deleting_a_rule_resolves_its_incidents(conn: psycopg.Connection[Any]) -> None:
    rule_id = _rule(conn, kind="gateway_offline", minutes=5, webhook_url="http://127.0.0.1:9/x")
    conn.execute(
        "INSERT INTO gateways (gateway_id, site_id, state, last_seen) VALUES ('gw', 'site-a', 'offline', %s)",
        (AT - timedelta(minutes=6),),
    )
    assert _round(conn, AT)["opened"] == 1
    conn.execute("UPDATE alert_rules SET deleted_at = now() WHERE rule_id = %s", (rule_id,))
    assert _round(conn, AT)["resolved"] == 1
    events = conn.execute("SELECT event FROM alert_notifications ORDER BY 1").fetchall()
    assert [e[0] for e in events] == ["opened", "resolved"]


def test_the_alerts_migration_goes_down_and_up_again(fresh_database: str) -> None:
    upgrade(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as c:
        create_token(c, Role.KIOSK, "screen")
    command.downgrade(alembic_config(fresh_database), "0009_targets")
    with psycopg.connect(fresh_database, autocommit=True) as c:
        assert c.execute("SELECT to_regclass('alert_rules')").fetchone() == (None,)
        # Kiosk tokens went with it; the role is refused again.
        assert c.execute("SELECT count(*) FROM api_tokens WHERE role = 'kiosk'").fetchone() == (0,)
        with pytest.raises(psycopg.errors.CheckViolation):  # (the schema below the privacy revision)
            c.execute("INSERT INTO api_tokens (token_hash, role, name) VALUES ('h', 'kiosk', 'screen')")
    upgrade(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as c:
        assert create_token(c, Role.KIOSK, "screen").startswith("takt_")


def test_a_round_is_skipped_while_another_process_holds_the_lock(fresh_database: str) -> None:
    upgrade(fresh_database)
    with (
        psycopg.connect(fresh_database, autocommit=True) as other,
        psycopg.connect(fresh_database, autocommit=True) as mine,
    ):
        _rule(other, kind="gateway_offline", minutes=5)
        other.execute(
            "INSERT INTO gateways (gateway_id, site_id, state, last_seen) "
            "VALUES ('gw', 'site-a', 'offline', %s)",
            (AT - timedelta(minutes=6),),
        )
        evaluator = AlertEvaluator(fresh_database, 1, {}, 600, clock=lambda: AT)
        with other.transaction():
            row = other.execute("SELECT pg_try_advisory_xact_lock(%s)", (ALERT_LOCK,)).fetchone()
            assert row == (True,)
            evaluator.run_round(mine)
            assert evaluator.skipped == 1
            assert _open(mine) == {}
        # The other process's round is over: this one evaluates.
        evaluator.run_round(mine)
        assert evaluator.skipped == 1
        assert list(_open(mine)) == ["gw"]
        evaluator.run_round(mine)
        assert mine.execute("SELECT count(*) FROM alert_incidents").fetchone() == (1,)
