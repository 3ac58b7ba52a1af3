"""Proof for the ML team: two model versions on generated footage, through storage and the API.

Production (``person-motion@2026.11.1``) and a shadow candidate (``@2026.11.2``,
which ignores small blobs and so misses the parts) ran side by side in one
edge agent on the same synthetic clip (``tests/models/footage.py``).
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from edge_agent.synthetic import START
from models.quality import DriftChecker, DriftSchedule, run_drift_check
from takt.cli import main
from takt.contract import Event, EventType
from takt.store.events import write_events
from takt.store.rollups import refresh_all
from tests.models.footage import CANDIDATE, PRODUCTION, two_version_events

HOUR = START.replace(minute=0, second=0)
WINDOW = {"from": HOUR.isoformat(), "to": (HOUR + timedelta(hours=1)).isoformat()}


@pytest.fixture(scope="module")
def footage_events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    # A fixed date: these tests read fixed windows and never pass the collector's plausibility check.
    return two_version_events(tmp_path_factory.mktemp("two-versions"), seconds=60, start_time=START)


def _store(dsn: str, events: list[Event], settings: ApiSettings) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        write_events(conn, events)
        refresh_all(conn, max_gap_s=settings.max_state_gap_s)


def _production_metrics(client: TestClient) -> list[Any]:
    return [
        client.get(f"/api/v1/metrics/{what}", params=WINDOW).json()
        for what in ("factory", "workers", "workstations", "workstations/st-1/cycle-time", "timeseries")
    ]


def test_breakdown_separates_versions_and_shadow_never_changes_production(
    client: TestClient, settings: ApiSettings, api_db: str, footage_events: list[Event]
) -> None:
    production = [e for e in footage_events if not e.shadow]
    shadow = [e for e in footage_events if e.shadow]
    _store(api_db, production, settings)
    before = _production_metrics(client)
    assert before[0]["total_production_count"] == sum(e.count for e in production) > 0
    _store(api_db, shadow, settings)
    assert _production_metrics(client) == before

    rows = {
        (m["model_version"], m["shadow"]): m
        for m in client.get("/api/v1/metrics/models", params=WINDOW).json()
    }
    assert set(rows) == {(PRODUCTION, False), (CANDIDATE, True)}
    prod, cand = rows[(PRODUCTION, False)], rows[(CANDIDATE, True)]
    assert prod["event_count"] == len(production) and cand["event_count"] == len(shadow)
    assert prod["total_units"] == before[0]["total_production_count"]
    assert cand["total_units"] == 0  # the candidate misses the parts: visible before promotion
    assert prod["units_per_working_hour"] > 0 == cand["units_per_working_hour"]
    # Same people, same frames: the state split agrees, so the difference is only the parts.
    assert cand["working_hours"] == pytest.approx(prod["working_hours"], abs=1e-3)

    def scored_mean(events: list[Event]) -> float:
        scored = [e.confidence for e in events if e.event_type is not EventType.ABSENT]
        return sum(scored) / len(scored)

    pooled = client.get("/api/v1/models/confidence", params={**WINDOW, "group": "model"}).json()
    by_model = {(c["model_version"], c["shadow"]): c for c in pooled}
    assert by_model[(PRODUCTION, False)]["mean"] == pytest.approx(scored_mean(production), abs=1e-3)
    assert by_model[(CANDIDATE, True)]["mean"] == pytest.approx(scored_mean(shadow), abs=1e-3)
    for c in pooled:
        assert sum(c["histogram"]) == c["events"]
        assert c["quantiles"]["0.1"] <= c["quantiles"]["0.5"] <= c["quantiles"]["0.9"]
    daily = client.get("/api/v1/models/confidence", params=WINDOW).json()
    assert {(c["model_version"], c["station_id"], c["day"]) for c in daily} == {
        (m, s, "2026-11-23") for m in (PRODUCTION, CANDIDATE) for s in ("st-1", "st-2")
    }


def _copies(events: list[Event], day: float, n: int, conf_drop: float = 0.0) -> list[Event]:
    """``n`` replays of the clip's production events, minutes apart, ``day`` days later."""
    out = []
    for k in range(n):
        shift = timedelta(days=day, minutes=2 * k)
        for e in events:
            if e.shadow:
                continue
            conf = e.confidence if e.event_type is EventType.ABSENT else max(0.0, e.confidence - conf_drop)
            out.append(
                e.model_copy(
                    update={
                        "event_id": uuid.uuid4(),
                        "timestamp": e.timestamp + shift,
                        "confidence": round(conf, 4),
                    }
                )
            )
    return out


@pytest.mark.parametrize(
    ("drop", "flagged"), [(0.0, set()), (0.3, {"confidence_psi", "confidence_quantile_shift"})]
)
def test_drift_check_flags_an_injected_confidence_drop_and_is_quiet_on_identical_windows(
    client: TestClient,
    settings: ApiSettings,
    api_db: str,
    footage_events: list[Event],
    drop: float,
    flagged: set[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Baseline: the clip on day 0; recent: the same clip a day later, confidence lowered by ``drop``.
    _store(api_db, _copies(footage_events, 0, 4) + _copies(footage_events, 1, 4, drop), settings)
    now = START + timedelta(days=1, hours=1)
    schedule = DriftSchedule(recent=timedelta(hours=2), baseline=timedelta(days=1))
    # The cron form: `takt models drift-check` with the same windows from TAKT_DRIFT_*.
    monkeypatch.setenv("TAKT_DRIFT_RECENT_HOURS", "2")
    monkeypatch.setenv("TAKT_DRIFT_BASELINE_DAYS", "1")
    result = CliRunner().invoke(
        main, ["models", "drift-check", "--database-url", api_db, "--now", now.isoformat(), "--fail-on-flag"]
    )
    assert result.exit_code == (1 if flagged else 0), result.output
    assert ("FLAG  station st-1: confidence_psi" in result.output) == bool(flagged)
    assert "3 subjects checked" in result.output
    with psycopg.connect(api_db, autocommit=True) as conn:
        results = run_drift_check(conn, now, schedule)
    assert {(r.subject.kind, r.subject.id) for r in results} == {
        ("station", "st-1"),
        ("station", "st-2"),
        ("camera", "cam-demo"),
    }
    assert all(r.report.enough_data for r in results)
    for r in results:
        assert {f.metric for f in r.report.flags} == flagged, r.subject

    stored = client.get("/api/v1/models/drift/flags").json()
    assert {(f["subject_id"], f["metric"]) for f in stored} == {
        (s, m) for s in ("st-1", "st-2", "cam-demo") for m in flagged
    }
    prometheus = client.get("/metrics")
    assert prometheus.status_code == 200
    assert f"takt_drift_flags_active {float(len(stored))}" in prometheus.text
    if flagged:
        assert (
            'takt_drift_flag{metric="confidence_psi",site_id="demo-site",subject_id="st-1",subject_kind="station"}'
            in (prometheus.text)
        )
        shift = stored[0]["details"]["quantile_shift"]["0.5"]
        assert shift == pytest.approx(-drop, abs=0.02)

    # The on-demand report over the same windows agrees with the scheduled one.
    report = client.get(
        "/api/v1/models/drift",
        params={
            "station_id": "st-1",
            "recent_from": (now - timedelta(hours=2)).isoformat(),
            "recent_to": now.isoformat(),
            "baseline_from": (now - timedelta(days=1, hours=2)).isoformat(),
            "baseline_to": (now - timedelta(hours=2)).isoformat(),
        },
    ).json()
    assert {f["metric"] for f in report["flags"]} == flagged
    assert report["state_mix_psi"] == pytest.approx(0.0, abs=1e-9)  # the states did not change

    if flagged:
        # Recovery: once the recent window looks like the baseline again, the flags go inactive.
        with psycopg.connect(api_db, autocommit=True) as conn:
            run_drift_check(conn, START + timedelta(hours=1), schedule)  # day 0 vs nothing: no verdict
            assert client.get("/api/v1/models/drift/flags").json() != []  # no verdict is not an all-clear
            conn.execute("DELETE FROM events WHERE ts >= %s", (START + timedelta(days=1),))
            write_events(conn, _copies(footage_events, 1, 4))
            run_drift_check(conn, now, schedule)
        assert client.get("/api/v1/models/drift/flags").json() == []
        # History keeps both checks' flags (the CLI's and the direct one), now inactive.
        history = client.get("/api/v1/models/drift/flags", params={"active": "false"}).json()
        assert len(history) == 2 * len(stored) and not any(f["active"] for f in history)


def test_deployed_versions_and_gateways(
    client: TestClient, settings: ApiSettings, api_db: str, footage_events: list[Event]
) -> None:
    _store(api_db, footage_events, settings)
    models = {m["model_version"]: m for m in client.get("/api/v1/models").json()}
    assert set(models) == {PRODUCTION, CANDIDATE}
    assert [(g["gateway_id"], g["shadow"], g["running_now"]) for g in models[CANDIDATE]["gateways"]] == [
        ("gw-demo", True, False)
    ]
    assert models[PRODUCTION]["first_seen"].startswith("2026-11-23T08:00:30")
    with psycopg.connect(api_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gateways (gateway_id, site_id, state, status) "
            "VALUES ('gw-demo', 'demo-site', 'online', "
            "%s::jsonb)",
            (orjson.dumps({"model_version": PRODUCTION, "shadow_model_version": CANDIDATE}).decode(),),
        )
    models = {m["model_version"]: m for m in client.get("/api/v1/models").json()}
    assert all(g["running_now"] for m in models.values() for g in m["gateways"])
    text = client.get("/metrics").text
    assert f'takt_model_gateways{{model_version="{CANDIDATE}",shadow="true"}} 1.0' in text
    # Prometheus scrapes with a token like everyone else.
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_label_samples_name_both_models(
    client: TestClient, settings: ApiSettings, api_db: str, footage_events: list[Event], tmp_path: Path
) -> None:
    _store(api_db, footage_events, settings)
    r = client.get("/api/v1/models/samples", params={**WINDOW, "format": "csv", "low_confidence_below": 0.7})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert int(r.headers["X-Sample-Count"]) == len(rows)
    counts = [row for row in rows if row["kind"] == "count_disagreement"]
    # Every unit production counted is a minute the candidate disagrees about.
    assert counts and all(
        row["production_model"] == PRODUCTION and row["candidate_model"] == CANDIDATE for row in counts
    )
    assert sum(int(row["production_count"]) for row in counts) == sum(
        e.count for e in footage_events if not e.shadow
    )
    assert all(row["candidate_count"] == "0" for row in counts)
    assert {row["camera_id"] for row in rows} == {"cam-demo"}
    low = [row for row in rows if row["kind"] == "low_confidence"]
    expected_low = [e for e in footage_events if e.event_type is not EventType.ABSENT and e.confidence < 0.7]
    assert len(low) == len(expected_low)

    jsonl = client.get("/api/v1/models/samples", params={**WINDOW, "low_confidence_below": 0.7})
    docs = [orjson.loads(line) for line in jsonl.content.splitlines()]
    assert len(docs) == len(rows)
    assert all(set(d["production"]["event_ids"]) for d in docs if d["kind"] == "count_disagreement")

    # The same export from the command line.
    out = tmp_path / "samples.jsonl"
    result = CliRunner().invoke(
        main,
        ["models", "export-samples", "--database-url", api_db, "--from", WINDOW["from"],
         "--to", WINDOW["to"], "--below", "0.7", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == jsonl.content


def test_label_samples_carry_frames_only_when_asked(
    api_db: str, settings: ApiSettings, footage_events: list[Event], tmp_path: Path
) -> None:
    import cv2
    import numpy as np

    from edge_agent.synthetic import render

    _store(api_db, footage_events, settings)
    # The same clip the events were made from (rendering is deterministic): the site's recording.
    video, _ = render(tmp_path / "recording", seed=7, duration_s=60, start_time=START)
    base = ["models", "export-samples", "--database-url", api_db, "--from", WINDOW["from"],
            "--to", WINDOW["to"], "--below", "0.7"]  # fmt: skip
    plain = tmp_path / "plain"
    plain.mkdir()
    result = CliRunner().invoke(main, [*base, "--out", str(plain / "samples.jsonl")])
    assert result.exit_code == 0, result.output
    docs = [orjson.loads(line) for line in (plain / "samples.jsonl").read_bytes().splitlines()]
    assert docs and not any("frames" in d for d in docs)
    assert [p.name for p in plain.iterdir()] == ["samples.jsonl"]  # no pictures of people

    frames = tmp_path / "frames"
    with_frames = [
        *base,
        "--with-frames",
        str(frames),
        "--footage",
        str(video),
        "--footage-start",
        START.isoformat(),
    ]
    result = CliRunner().invoke(main, [*with_frames, "--out", str(tmp_path / "samples.jsonl")])
    assert result.exit_code == 0, result.output
    framed = [orjson.loads(line) for line in (tmp_path / "samples.jsonl").read_bytes().splitlines()]
    assert [{k: v for k, v in d.items() if k != "frames"} for d in framed] == docs
    # Each picture is the recording's frame at the middle of its sample's window; a window whose
    # middle lies past the recording's end (a count minute cut by the clip's end) has none.
    capture = cv2.VideoCapture(str(video))
    clip = []
    while (read := capture.read())[0]:
        clip.append(read[1])
    pictured = 0
    for d in framed:
        lo, hi = datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"])
        index = round((lo + (hi - lo) / 2 - START).total_seconds() * 10)  # the clip is 10 fps
        if not 0 <= index < len(clip):
            assert d["frames"] == [], d
            continue
        (name,) = d["frames"]
        picture = cv2.imread(str(frames / name))
        assert np.abs(picture.astype(float) - clip[index].astype(float)).mean() < 3  # JPEG round trip
        pictured += 1
    assert pictured >= len(framed) - 2
    assert sorted(p.name for p in frames.iterdir()) == sorted(n for d in framed for n in d["frames"])
    csv_out = tmp_path / "samples.csv"
    result = CliRunner().invoke(main, [*with_frames, "--format", "csv", "--out", str(csv_out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(csv_out.read_text())))
    assert [row["frames"] for row in rows] == [" ".join(d["frames"]) for d in framed]
    # Half the options is a clear error, not a silent export without pictures.
    result = CliRunner().invoke(main, [*base, "--with-frames", str(frames)])
    assert result.exit_code == 2 and "go together" in result.output


@pytest.mark.wallclock  # the replays are placed relative to now
def test_scheduled_checker_records_flags(
    settings: ApiSettings, api_db: str, footage_events: list[Event]
) -> None:
    # The clip replayed an hour ago with lower confidence, and a day before that as it was.
    recent = (datetime.now(UTC) - timedelta(hours=1) - START) / timedelta(days=1)
    _store(api_db, _copies(footage_events, recent - 1, 4) + _copies(footage_events, recent, 4, 0.3), settings)
    schedule = DriftSchedule(recent=timedelta(hours=3), baseline=timedelta(days=2))
    checker = DriftChecker(api_db, schedule, interval_s=0.05)
    checker.start()
    try:
        with psycopg.connect(api_db, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while conn.execute("SELECT count(*) FROM drift_flags").fetchone() == (0,):
                assert time.monotonic() < deadline, "the drift checker recorded nothing"
                time.sleep(0.05)
    finally:
        checker.stop()
    with psycopg.connect(api_db) as conn:
        metrics = {r[0] for r in conn.execute("SELECT metric FROM drift_flags WHERE subject_id = 'st-1'")}
    assert "confidence_psi" in metrics
