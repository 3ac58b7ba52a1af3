"""The dashboard's own endpoints through the API app: auth, static files, timelines, live stream."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from takt.contract import Event
from takt.store.events import write_events
from tests.dashboard.conftest import ADMIN, Server

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _event(minutes: float, kind: str, worker: str = "W1", station: str = "S1", **extra: object) -> Event:
    return Event.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "timestamp": T0 + timedelta(minutes=minutes),
            "worker_id": worker,
            "station_id": station,
            "event_type": kind,
            "confidence": 0.9,
            "model_version": "m@1",
            **extra,
        }
    )


def _client(server: Server, token: str | None = ADMIN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def test_page_and_vendored_chart_library_are_served_locally(dash_server: Server) -> None:
    with _client(dash_server, None) as c:
        root = c.get("/", follow_redirects=False)
        assert root.status_code in (302, 307)
        assert root.headers["location"] == "/dashboard/"
        page = c.get("/dashboard/")
        assert page.status_code == 200
        assert 'src="js/main.js"' in page.text
        # No script, style or font from anywhere but this server.
        assert "http://" not in page.text and "https://" not in page.text
        for name in VENDORED:
            assert c.get(f"/dashboard/vendor/{name}").status_code == 200, name
        assert c.get("/dashboard/vendor/uPlot.min.css").headers["content-type"].startswith("text/css")
        assert c.get("/dashboard/js/main.js").headers["content-type"].startswith("text/javascript")


def test_favicon_is_served(dash_server: Server) -> None:
    with _client(dash_server, None) as c:
        ico = c.get("/favicon.ico")
        svg = c.get("/dashboard/favicon.svg")
    assert ico.status_code == 200 and ico.headers["content-type"] == "image/x-icon"
    assert ico.content[:4] == b"\x00\x00\x01\x00"  # an ICO directory
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"


VENDORED = ("uPlot.esm.js", "uPlot.min.css", "uPlot.LICENSE")
ROOT = Path(__file__).resolve().parents[2]


def test_a_built_wheel_carries_the_whole_dashboard(tmp_path: Path) -> None:
    """``pip install .`` and the Docker image install this wheel: the chart library must be in it.

    The wheel is built from the files git would put in a clone (tracked, or new and not
    ignored), so a vendored file that only bootstrap's npm step creates fails here.
    """
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    src = tmp_path / "src"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("takt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = "dashboard/static/"
    expected = {
        *(f"{static}vendor/{n}" for n in VENDORED),
        f"{static}index.html",
        f"{static}favicon.ico",
        f"{static}favicon.svg",
        f"{static}js/main.js",
        f"{static}js/time.js",
    }
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if "node_modules" in n]
    # The committed files are the version the lock records (bootstrap checks their bytes with npm).
    lock = json.loads((ROOT / "dashboard" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/uplot"]["version"]
    assert f"(v{version})" in zipfile.ZipFile(wheel).read(f"{static}vendor/uPlot.esm.js").decode()[:400]


@pytest.mark.parametrize(
    "path", ["/api/session", "/api/timeline?worker_id=W1", "/api/events/recent", "/api/live"]
)
def test_endpoints_need_a_reader_token(dash_server: Server, path: str) -> None:
    with _client(dash_server, None) as c:
        assert c.get(path).status_code == 401
    with _client(dash_server, "wrong") as c:
        assert c.get(path).status_code == 401
    with _client(dash_server, dash_server.gateway_token) as c:
        assert c.get(path).status_code == 403


def test_session_reports_the_tokens_role(dash_server: Server) -> None:
    with _client(dash_server, dash_server.viewer_token) as c:
        assert c.get("/api/session").json()["role"] == "viewer"
    with _client(dash_server) as c:
        body = c.get("/api/session").json()
    assert body["role"] == "admin"
    assert body["site_id"] in body["sites"]


def test_timeline_segments_follow_the_next_state_rule(dash_server: Server) -> None:
    with psycopg.connect(dash_server.dsn) as conn:
        write_events(
            conn,
            [
                _event(0, "working"),
                _event(8, "idle"),
                _event(12, "working"),
                _event(16, "working"),  # same state again: one band
                _event(18, "product_count", count=3),
                _event(20, "absent", duration_s=600),
                _event(5, "working", worker="W2", station="S2"),
                # W2's latest state, weeks ago: it lasts 0 and is not in force now, so not drawn.
                _event(9, "idle", worker="W2", station="S2"),
                _event(10, "working", shadow=True),  # a shadow model's opinion: not a state
                _event(40, "working", worker="W3"),
                _event(55, "idle", worker="W3"),  # 15 min later: capped at max_state_gap_s
            ],
        )
    window = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}
    with _client(dash_server) as c:
        body = c.get("/api/timeline", params={"worker_id": "W1", **window}).json()
        station = c.get("/api/timeline", params={"station_id": "S2", **window}).json()
        capped = c.get("/api/timeline", params={"worker_id": "W3", **window}).json()
        bad = c.get("/api/timeline", params={"worker_id": "W1", "station_id": "S1", **window})
        recent = c.get("/api/events/recent", params={"worker_id": "W1", "limit": 3}).json()
    spans = [(s["state"], s["start"][11:16], s["end"][11:16]) for s in body["segments"]]
    assert spans == [
        ("working", "08:00", "08:08"),
        ("idle", "08:08", "08:12"),
        ("working", "08:12", "08:20"),
        ("absent", "08:20", "08:30"),
    ]
    assert [(s["worker_id"], s["state"]) for s in station["segments"]] == [("W2", "working")]
    first = capped["segments"][0]
    assert (first["start"][11:16], first["end"][11:16]) == ("08:40", "08:50")
    assert bad.status_code == 422
    assert [e["event_type"] for e in recent] == ["absent", "product_count", "working"]
    assert recent[1]["count"] == 3 and recent[1]["model_version"] == "m@1"
    assert recent[0]["confidence"] == pytest.approx(0.9)


def test_live_stream_announces_a_stored_event(dash_server: Server) -> None:
    with (
        _client(dash_server) as c,
        c.stream("GET", "/api/live", headers={"Accept": "text/event-stream"}) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert "event: hello" in [next(lines) for _ in range(3)]
        with psycopg.connect(dash_server.dsn) as conn:
            write_events(conn, [_event(0, "working")])
        event = None
        for line in lines:
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "change":
                # Metrics include events before they are rolled up: they changed too.
                assert {"events", "metrics"} <= set(json.loads(line.removeprefix("data: "))["changed"])
                break


def _live(ago_s: float, kind: str, worker: str, duration_s: float | None, station: str = "S1") -> Event:
    at = datetime.now(UTC) - timedelta(seconds=ago_s)
    return _event(0, kind, worker=worker, station=station, duration_s=duration_s, timestamp=at)


@pytest.mark.wallclock
def test_now_counts_states_in_progress_as_the_edge_agent_sends_them(dash_server: Server) -> None:
    """State changes (duration_s 0) keep their state in force; segments carry the time (takt.states)."""
    with psycopg.connect(dash_server.dsn) as conn:
        write_events(
            conn,
            [
                # W1: a change to working, then two 10 s segments: working.
                _live(90, "working", "W1", 0.0),
                _live(90, "working", "W1", 10.0),
                _live(80, "working", "W1", 10.0),
                # W2: only the change so far (the first segment is not due yet): working.
                _live(60, "working", "W2", 0.0, station="S2"),
                # W3: worked, then changed to idle: not working.
                _live(50, "working", "W3", 0.0, station="S3"),
                _live(50, "working", "W3", 20.0, station="S3"),
                _live(30, "idle", "W3", 0.0, station="S3"),
                # W4: working, but its gateway fell silent 11 minutes ago (> max_state_gap_s).
                _live(1500, "working", "W4", 0.0, station="S4"),
                _live(1500, "working", "W4", 840.0, station="S4"),
                # An unnamed person working at S5 counts too.
                _live(10, "working", "unknown", 0.0, station="S5"),
            ],
        )
    with _client(dash_server) as c:
        now = c.get("/api/now").json()
        w2 = c.get("/api/timeline", params={"worker_id": "W2"}).json()["segments"]
        w1 = c.get("/api/timeline", params={"worker_id": "W1"}).json()["segments"]
    assert now["active_workers"] == 3
    assert [(w["worker_id"], w["station_id"]) for w in now["working"]] == [
        ("W1", "S1"),
        ("W2", "S2"),
        ("unknown", "S5"),
    ]
    # The state in progress is drawn from where it began (W2) or was last heard (W1) up to now.
    assert [(s["state"], s["open"]) for s in w2] == [("working", True)]
    assert 55 <= (datetime.fromisoformat(w2[0]["end"]) - datetime.fromisoformat(w2[0]["start"])).seconds <= 70
    assert [(s["state"], s["open"]) for s in w1] == [("working", True)]
    assert (datetime.fromisoformat(w1[0]["end"]) - datetime.fromisoformat(w1[0]["start"])).seconds >= 85
