"""Site-scoped tokens, the per-person right and the privacy audit (docs/privacy.md).

The walk (:func:`test_every_get_route_keeps_to_the_tokens_sites`) calls every GET route of the
OpenAPI schema with a token for plant-a only, in a database holding plant-a and plant-b, and
checks that nothing of plant-b comes back and that naming plant-b's ids answers 404/403. A new
GET route fails :func:`test_every_get_route_is_declared` until it is declared in :data:`ROUTES`.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import Role, create_token
from api.settings import ApiSettings
from takt.cli import main
from takt.privacy import SitePrivacy
from takt.store.rollups import refresh_all

# Fixed past times (the API tests' settings accept old events); windows are given explicitly.
DAY = "2026-11-02"
FROM, TO = f"{DAY}T00:00:00Z", f"{DAY}T23:00:00Z"
WINDOW = {"from": FROM, "to": TO}
# What plant-b's data looks like: none of it may reach a plant-a token.
FOREIGN = ("plant-b", "WB1", "SB1", "gw-b", "model-b")
OWN = {"site": "plant-a", "worker": "WA1", "station": "SA1", "gateway": "gw-a", "model": "model-a"}
OTHER = {"site": "plant-b", "worker": "WB1", "station": "SB1", "gateway": "gw-b", "model": "model-b"}


def _events(site: dict[str, str], hour: int, seq0: int) -> list[dict[str, Any]]:
    out = []
    for i, (minute, kind) in enumerate(((0, "working"), (20, "product_count"), (30, "idle"), (40, "absent"))):
        out.append(
            {
                "event_id": str(uuid.uuid4()),
                "timestamp": f"{DAY}T{hour:02d}:{minute:02d}:00Z",
                "worker_id": site["worker"],
                "station_id": site["station"],
                "event_type": kind,
                "confidence": 0.9,
                "count": 1 if kind == "product_count" else 0,
                "model_version": site["model"],
                "site_id": site["site"],
                "gateway_id": site["gateway"],
                "camera_id": f"cam-{site['station']}",
                "seq": seq0 + i,
            }
        )
    return out


@pytest.fixture
def two_sites(settings: ApiSettings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An app over plant-a and plant-b (rolled up, plus a pending tail), and tokens by name."""
    # plant-a lets readers without the per-person right see one-person groups; plant-b keeps k = 5.
    config = settings.model_copy(
        update={"response_cache_ttl_s": 0, "privacy": {"plant-a": SitePrivacy(min_group=1)}}
    )
    with TestClient(create_app(config), headers={"Authorization": "Bearer test-admin-token"}) as c:
        for site in (OWN, OTHER):
            r = c.post("/api/v1/events/batch", json=_events(site, 8, 1))
            assert r.json()["success_count"] == 4, r.text
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            refresh_all(conn, max_gap_s=settings.max_state_gap_s)
            for site in (OWN, OTHER):
                conn.execute(
                    "INSERT INTO gateways (gateway_id, site_id, state, last_seen, status) "
                    "VALUES (%s, %s, 'online', now(), %s::jsonb)",
                    (site["gateway"], site["site"], f'{{"model_version": "{site["model"]}"}}'),
                )
                conn.execute(
                    "INSERT INTO drift_flags (checked_at, site_id, subject_kind, subject_id, metric, value, "
                    "threshold, baseline_from, baseline_to, recent_from, recent_to) VALUES "
                    "(now(), %s, 'station', %s, 'confidence_psi', 0.5, 0.2, now(), now(), now(), now())",
                    (site["site"], site["station"]),
                )
            for site, line in ((OWN, "L-A"), (OTHER, "L-B")):
                conn.execute(
                    "INSERT INTO lines (line_id, site_id, name, updated_by) VALUES (%s, %s, %s, 'test')",
                    (line, site["site"], line),
                )
                conn.execute(
                    "INSERT INTO line_stations (line_id, position, station_id) VALUES (%s, 0, %s)",
                    (line, site["station"]),
                )
        # An alert rule with an open incident at each site: rule and incident 1 at plant-a, 2 at plant-b.
        for n, site in enumerate((OWN, OTHER), start=1):
            rule = {
                "kind": "station_idle",
                "site_id": site["site"],
                "station_id": site["station"],
                "minutes": 10,
            }
            r = c.post("/api/v1/alerts/rules", json=rule)
            assert r.status_code == 201 and r.json()["rule_id"] == n, r.text
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            for n, site in enumerate((OWN, OTHER), start=1):
                conn.execute(
                    "INSERT INTO alert_incidents (incident_id, rule_id, site_id, subject, summary, "
                    "condition_since) VALUES (%s, %s, %s, %s, 'idle', now())",
                    (n, n, site["site"], site["station"]),
                )
                # A shift report made at each site (api/shift_report/schedule.py), one recipient each.
                conn.execute(
                    "INSERT INTO shift_reports (report_id, site_id, shift, shift_start, shift_end, "
                    "local_day, "
                    "subject, html, pdf) VALUES (%s, %s, 'day', now() - interval '9 hours', "
                    "now() - interval '1 hour', current_date, %s, %s, '%%PDF')",
                    (n, site["site"], f"report {site['site']}", f"<p>{site['station']}</p>"),
                )
                conn.execute(
                    "INSERT INTO report_recipients (site_id, email, added_by) VALUES (%s, %s, 'test')",
                    (site["site"], f"lead@{site['site']}.example"),
                )
            tokens = {
                "viewer-a": create_token(conn, Role.VIEWER, "v", sites=["plant-a"]),
                "supervisor-a": create_token(conn, Role.SUPERVISOR, "s", sites=["plant-a"]),
                "admin-a": create_token(conn, Role.ADMIN, "a", sites=["plant-a"]),
                "viewer": create_token(conn, Role.VIEWER, "all"),
                "supervisor": create_token(conn, Role.SUPERVISOR, "all"),
            }
        # A pending tail (not rolled up yet) at both sites.
        for site in (OWN, OTHER):
            assert c.post("/api/v1/events/batch", json=_events(site, 10, 10)).json()["success_count"] == 4
        yield c, tokens


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Case:
    """How the walk calls one GET route with a plant-a token.

    ``own``: path and query values for a plain call (must answer 200 without plant-b data);
    ``foreign``: variants naming plant-b's ids or site (each must answer 404 or 403);
    ``all_sites``: the route spans every site and refuses site-scoped tokens (403);
    ``public``: no token needed and no site data (health)."""

    own: dict[str, str] = field(default_factory=dict)
    foreign: tuple[dict[str, str], ...] = ()
    all_sites: bool = False
    public: bool = False


SITE_B = {"site_id": "plant-b"}
ROUTES: dict[str, Case] = {
    "/health": Case(public=True),
    "/health/ready": Case(public=True),
    "/api/session": Case(),
    "/api/now": Case(foreign=(SITE_B,)),
    "/api/live": Case(),  # kinds of change only, never data: checked in test_live_stream_names_no_site
    "/api/stations/{station_id}/workers": Case(
        own={"station_id": "SA1", **WINDOW}, foreign=({"station_id": "SB1", **WINDOW},)
    ),
    "/api/timeline": Case(
        own={"station_id": "SA1", **WINDOW},
        foreign=({"station_id": "SB1", **WINDOW}, {"worker_id": "WB1", **WINDOW}),
    ),
    "/api/events/recent": Case(
        own=WINDOW, foreign=({"station_id": "SB1"}, {"worker_id": "WB1"}, {**WINDOW, **SITE_B})
    ),
    "/api/v1/workers": Case(),
    "/api/v1/workstations": Case(),
    "/api/v1/metrics/workers": Case(own=WINDOW, foreign=({**WINDOW, **SITE_B},)),
    "/api/v1/metrics/workers/{worker_id}": Case(
        own={"worker_id": "WA1", **WINDOW}, foreign=({"worker_id": "WB1", **WINDOW},)
    ),
    "/api/v1/metrics/workstations": Case(own=WINDOW, foreign=({**WINDOW, **SITE_B},)),
    "/api/v1/metrics/workstations/{station_id}": Case(
        own={"station_id": "SA1", **WINDOW}, foreign=({"station_id": "SB1", **WINDOW},)
    ),
    "/api/v1/metrics/workstations/{station_id}/cycle-time": Case(
        own={"station_id": "SA1", **WINDOW}, foreign=({"station_id": "SB1", **WINDOW},)
    ),
    "/api/v1/metrics/factory": Case(own=WINDOW, foreign=({**WINDOW, **SITE_B},)),
    "/api/v1/metrics/models": Case(own=WINDOW, foreign=({**WINDOW, **SITE_B},)),
    "/api/v1/metrics/timeseries": Case(
        own=WINDOW,
        foreign=({**WINDOW, "id": "WB1"}, {**WINDOW, "by": "workstation", "id": "SB1"}, {**WINDOW, **SITE_B}),
    ),
    "/api/v1/gateways": Case(),
    "/api/v1/audit/gaps": Case(),
    "/api/v1/models": Case(),
    "/api/v1/models/confidence": Case(
        own=WINDOW, foreign=({**WINDOW, "station_id": "SB1"}, {**WINDOW, **SITE_B})
    ),
    "/api/v1/models/drift": Case(
        own={"station_id": "SA1", "recent_from": f"{DAY}T09:00:00Z", "recent_to": TO},
        foreign=({"station_id": "SB1"}, {"station_id": "SA1", **SITE_B}),
    ),
    "/api/v1/models/drift/flags": Case(own={"active": "false"}),
    "/api/v1/models/samples": Case(
        own={**WINDOW, "low_confidence_below": "1"},
        foreign=({**WINDOW, "station_id": "SB1"}, {**WINDOW, **SITE_B}),
    ),
    "/api/v1/targets/stations/{station_id}": Case(
        own={"station_id": "SA1"}, foreign=({"station_id": "SB1"},)
    ),
    "/api/v1/lines": Case(foreign=(SITE_B,)),
    "/api/v1/lines/{line_id}": Case(own={"line_id": "L-A"}, foreign=({"line_id": "L-B"},)),
    "/api/v1/metrics/hour-by-hour": Case(
        own={"station_id": "SA1", **WINDOW},
        foreign=({"station_id": "SB1", **WINDOW}, {"line_id": "L-B", **WINDOW}),
    ),
    "/api/v1/metrics/lines/{line_id}": Case(
        own={"line_id": "L-A", **WINDOW}, foreign=({"line_id": "L-B", **WINDOW},)
    ),
    "/api/v1/metrics/losses": Case(
        own=WINDOW, foreign=({**WINDOW, **SITE_B}, {**WINDOW, "station_id": "SB1"})
    ),
    "/api/v1/loss-tags": Case(own=WINDOW, foreign=({**WINDOW, **SITE_B},)),
    "/api/v1/reasons": Case(own={"site_id": "plant-a"}, foreign=(SITE_B,)),
    "/api/v1/reports/shift": Case(own=WINDOW, foreign=({**WINDOW, **SITE_B},)),
    "/api/v1/reports/recipients": Case(foreign=(SITE_B,)),
    "/api/v1/reports/scheduled": Case(foreign=(SITE_B,)),
    "/api/v1/reports/scheduled/{report_id}": Case(own={"report_id": "1"}, foreign=({"report_id": "2"},)),
    "/api/v1/alerts": Case(foreign=(SITE_B,)),
    "/api/v1/alerts/rules": Case(foreign=(SITE_B,)),
    "/api/v1/alerts/rules/{rule_id}": Case(own={"rule_id": "1"}, foreign=({"rule_id": "2"},)),
    "/api/v1/alerts/{incident_id}": Case(own={"incident_id": "1"}, foreign=({"incident_id": "2"},)),
    "/api/v1/andon": Case(foreign=(SITE_B,)),
    "/api/v1/tokens": Case(all_sites=True),
    "/api/v1/privacy/audit": Case(all_sites=True),
}


def _get_routes(client: TestClient) -> set[str]:
    paths = client.get("/openapi.json").json()["paths"]
    return {path for path, ops in paths.items() if "get" in ops}


def _call(client: TestClient, template: str, values: dict[str, str], token: str) -> Any:
    query = dict(values)
    path = template
    for name in [part[1:-1] for part in template.split("/") if part.startswith("{")]:
        path = path.replace(f"{{{name}}}", query.pop(name))
    return client.get(path, params=query, headers=_as(token))


def test_every_get_route_is_declared(settings: ApiSettings) -> None:
    with TestClient(create_app(settings)) as c:
        routes = _get_routes(c)
    undeclared = sorted(routes - set(ROUTES))
    assert not undeclared, f"declare these GET routes in ROUTES (tests/api/test_privacy.py): {undeclared}"
    assert not set(ROUTES) - routes, "ROUTES names routes the API no longer has"


def test_every_get_route_keeps_to_the_tokens_sites(two_sites: tuple[TestClient, dict[str, str]]) -> None:
    c, tokens = two_sites
    token = tokens["admin-a"]
    for template in sorted(_get_routes(c)):
        case = ROUTES[template]
        if case.public or template == "/api/live":
            continue
        r = _call(c, template, case.own, token)
        if case.all_sites:
            assert r.status_code == 403, (template, r.status_code)
            assert r.json()["error"].startswith("needs a token for every site")
            continue
        assert r.status_code == 200, (template, r.status_code, r.text)
        leaked = [marker for marker in FOREIGN if marker in r.text]
        assert not leaked, (template, leaked, r.text[:500])
        for variant in case.foreign:
            refused = _call(c, template, variant, token)
            assert refused.status_code in (403, 404), (template, variant, refused.status_code, refused.text)
            assert set(refused.json()) >= {"error", "status", "request_id"}
            # The same answer as for an id that exists nowhere: no hint that plant-b has it.
            made_up = {k: v.replace("B1", "Z9").replace("plant-b", "plant-z") for k, v in variant.items()}
            assert _call(c, template, made_up, token).status_code == refused.status_code, (template, variant)


def test_scoped_answers_hold_the_own_sites_data(two_sites: tuple[TestClient, dict[str, str]]) -> None:
    """The walk's 200s are not empty: plant-a's figures are all there, and equal an unscoped site filter."""
    c, tokens = two_sites
    scoped = c.get("/api/v1/metrics/workstations", params=WINDOW, headers=_as(tokens["admin-a"])).json()
    assert [s["station_id"] for s in scoped] == ["SA1"]
    assert scoped[0]["total_units_produced"] == 2 and scoped[0]["event_count"] == 8
    named = c.get("/api/v1/metrics/workstations", params={**WINDOW, "site_id": "plant-a"}).json()
    assert [s for s in named if s["station_id"] == "SA1"] == scoped
    everything = c.get("/api/v1/metrics/factory", params=WINDOW).json()
    mine = c.get("/api/v1/metrics/factory", params=WINDOW, headers=_as(tokens["admin-a"])).json()
    assert everything["total_production_count"] == 4 and mine["total_production_count"] == 2
    assert mine["worker_count"] == 1 and mine["station_count"] == 1
    gateways = c.get("/api/v1/gateways", headers=_as(tokens["supervisor-a"])).json()
    assert [g["gateway_id"] for g in gateways] == ["gw-a"]
    models = c.get("/api/v1/models", headers=_as(tokens["viewer-a"])).json()
    assert [m["model_version"] for m in models] == ["model-a"]
    session = c.get("/api/session", headers=_as(tokens["viewer-a"])).json()
    assert session["sites"] == ["plant-a"] and session["site_scoped"] and not session["per_person"]


def test_per_person_figures_need_the_supervisor_role(two_sites: tuple[TestClient, dict[str, str]]) -> None:
    c, tokens = two_sites
    for name in ("viewer", "viewer-a"):
        v = _as(tokens[name])
        for path, params in (
            ("/api/v1/metrics/workers", WINDOW),
            ("/api/v1/metrics/workers/WA1", WINDOW),
            ("/api/v1/metrics/timeseries", WINDOW),
            ("/api/v1/workers", {}),
            ("/api/timeline", {"worker_id": "WA1", **WINDOW}),
            ("/api/events/recent", {"worker_id": "WA1"}),
            ("/api/stations/SA1/workers", WINDOW),
        ):
            r = c.get(path, params=params, headers=v)
            assert r.status_code == 403, (name, path, r.status_code)
            assert "supervisor" in r.json()["error"]
        # Stations and teams only: station figures come (plant-a: k = 1), worker ids do not.
        mine = {**WINDOW, "site_id": "plant-a"}
        assert c.get("/api/v1/metrics/workstations", params=mine, headers=v).status_code == 200
        series = c.get("/api/v1/metrics/timeseries", params={**mine, "by": "workstation"}, headers=v).json()
        assert {p["id"] for p in series} == {"SA1"}
        if name == "viewer-a":  # plant-a: k = 1
            recent = c.get("/api/events/recent", params=WINDOW, headers=v).json()
            assert recent and {e["worker_id"] for e in recent} == {"(hidden)"}
            timeline = c.get("/api/timeline", params={"station_id": "SA1", **WINDOW}, headers=v).json()
            assert timeline["segments"] and {x["worker_id"] for x in timeline["segments"]} == {"(hidden)"}
    s = _as(tokens["supervisor-a"])
    workers = c.get("/api/v1/metrics/workers", params=WINDOW, headers=s).json()
    assert [w["worker_id"] for w in workers] == ["WA1"]
    recent = c.get("/api/events/recent", params=WINDOW, headers=s).json()
    assert {e["worker_id"] for e in recent} == {"WA1"}


def _audit_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT actor, role, action, resource, subject, sites FROM privacy_audit ORDER BY id"
        ).fetchall()


def test_per_person_reads_are_audited_also_from_the_cache(settings: ApiSettings) -> None:
    cached = settings.model_copy(update={"response_cache_ttl_s": 60})
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        supervisor = create_token(conn, Role.SUPERVISOR, "lead", sites=["plant-a"])
        token_id = conn.execute("SELECT max(token_id) FROM api_tokens").fetchone()
    assert token_id is not None
    with TestClient(create_app(cached), headers={"Authorization": "Bearer test-admin-token"}) as c:
        assert c.post("/api/v1/events/batch", json=_events(OWN, 8, 1)).json()["success_count"] == 4
        assert _audit_rows(settings.database_url) == []
        for _ in range(2):  # the second answer comes from the response cache
            r = c.get("/api/v1/metrics/workers/WA1", params=WINDOW, headers=_as(supervisor))
            assert r.status_code == 200 and "x-takt-per-person" not in r.headers
        # Station figures are not per-person data: not audited.
        assert (
            c.get("/api/v1/metrics/workstations", params=WINDOW, headers=_as(supervisor)).status_code == 200
        )
        rows = _audit_rows(settings.database_url)
        assert len(rows) == 2
        actor, role, action, resource, subject, sites = rows[0]
        assert (actor, role, action, subject, sites) == (
            f"token:{token_id[0]}",
            "supervisor",
            "read",
            "WA1",
            ["plant-a"],
        )
        assert resource.startswith("GET /api/v1/metrics/workers/WA1?from=")
        # Admins read it back, as JSON and CSV.
        body = c.get("/api/v1/privacy/audit", params={"worker_id": "WA1"}).json()
        assert [b["subject"] for b in body] == ["WA1", "WA1"]
        exported = c.get("/api/v1/privacy/audit", params={"format": "csv"})
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert [t["actor"] for t in table] == [actor, actor] and table[0]["sites"] == "plant-a"
        assert c.get("/api/v1/privacy/audit", headers=_as(supervisor)).status_code == 403
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for statement in (
            "UPDATE privacy_audit SET actor = 'x'",
            "DELETE FROM privacy_audit",
            "TRUNCATE privacy_audit",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert len(_audit_rows(settings.database_url)) == 2


def test_site_scoped_tokens_from_the_cli_and_the_api(settings: ApiSettings) -> None:
    env = {"TAKT_DATABASE_URL": settings.database_url}
    runner = CliRunner()
    made = runner.invoke(
        main,
        ["api", "token", "create", "--role", "viewer", "--site", "plant-a", "--site", "plant-b"],
        env=env,
    )
    assert made.exit_code == 0, made.output
    listed = runner.invoke(main, ["api", "token", "list"], env=env)
    assert "plant-a,plant-b" in listed.output
    bad = runner.invoke(main, ["api", "token", "create", "--role", "viewer", "--site", "no/slash"], env=env)
    assert bad.exit_code != 0 and "not valid" in bad.output
    with TestClient(create_app(settings), headers={"Authorization": "Bearer test-admin-token"}) as c:
        r = c.post("/api/v1/tokens", json={"role": "admin", "name": "plant-a admin", "sites": ["plant-a"]})
        assert r.status_code == 201 and r.json()["sites"] == ["plant-a"]
        admin_a = _as(r.json()["token"])
        # A site-scoped admin makes tokens for its own sites only.
        assert (
            c.post(
                "/api/v1/tokens", json={"role": "viewer", "sites": ["plant-b"]}, headers=admin_a
            ).status_code
            == 403
        )
        assert c.post("/api/v1/tokens", json={"role": "viewer"}, headers=admin_a).status_code == 403
        ok = c.post("/api/v1/tokens", json={"role": "viewer", "sites": ["plant-a"]}, headers=admin_a)
        assert ok.status_code == 201
        assert c.post("/api/v1/seed", headers=admin_a).status_code == 403
        assert c.post("/api/v1/events", json=_events(OWN, 8, 1)[0], headers=admin_a).status_code == 403
        assert c.get("/metrics", headers=admin_a).status_code == 403
        listed_api = c.get("/api/v1/tokens").json()
        assert {tuple(t["sites"] or ()) for t in listed_api} >= {("plant-a", "plant-b"), ("plant-a",)}
        assert c.post("/api/v1/tokens", json={"role": "gateway"}).status_code == 422


def test_response_cache_keeps_sites_apart(settings: ApiSettings) -> None:
    cached = settings.model_copy(update={"response_cache_ttl_s": 60})
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        viewer_a = create_token(conn, Role.SUPERVISOR, "a", sites=["plant-a"])
        viewer_b = create_token(conn, Role.SUPERVISOR, "b", sites=["plant-b"])
    with TestClient(create_app(cached), headers={"Authorization": "Bearer test-admin-token"}) as c:
        for site in (OWN, OTHER):
            c.post("/api/v1/events/batch", json=_events(site, 8, 1))
        a = c.get("/api/v1/metrics/workstations", params=WINDOW, headers=_as(viewer_a)).json()
        b = c.get("/api/v1/metrics/workstations", params=WINDOW, headers=_as(viewer_b)).json()
    assert [s["station_id"] for s in a] == ["SA1"] and [s["station_id"] for s in b] == ["SB1"]


def test_figures_about_fewer_than_k_people_are_withheld(two_sites: tuple[TestClient, dict[str, str]]) -> None:
    """plant-b keeps the default k = 5 and has one person per station: readers without the
    per-person right get none of its figures; a supervisor gets them all."""
    c, tokens = two_sites
    b = {**WINDOW, "site_id": "plant-b"}
    v = _as(tokens["viewer"])
    listed = c.get("/api/v1/metrics/workstations", params=b, headers=v)
    assert listed.status_code == 200 and listed.headers["X-Takt-Withheld"] == "1"
    # SB1 is withheld; stations without data at plant-b are listed with zeros, as for everyone.
    assert [(r["station_id"], r["event_count"]) for r in listed.json()] == [("SA1", 0)]
    for path in (
        "/api/v1/metrics/workstations/SB1",
        "/api/v1/metrics/workstations/SB1/cycle-time",
        "/api/v1/metrics/factory",
        "/api/v1/metrics/models",
    ):
        r = c.get(path, params=b, headers=v)
        assert r.status_code == 403 and "fewer than 5 people" in r.json()["error"], (path, r.text)
    series = c.get("/api/v1/metrics/timeseries", params={**b, "by": "workstation"}, headers=v).json()
    assert series == []
    # The dashboard's own station views: the timeline is refused, recent events leave plant-b out.
    r = c.get("/api/timeline", params={"station_id": "SB1", **WINDOW}, headers=v)
    assert r.status_code == 403 and "fewer than 5 people" in r.json()["error"]
    assert c.get("/api/events/recent", params={**WINDOW, "site_id": "plant-b"}, headers=v).json() == []
    assert c.get(
        "/api/events/recent", params={**WINDOW, "site_id": "plant-b"}, headers=_as(tokens["supervisor"])
    ).json()
    # Without a site, the request spans both sites: the larger k (5) applies.
    assert c.get("/api/v1/metrics/factory", params=WINDOW, headers=v).status_code == 403
    # plant-a's own k = 1 lets its one-person station through.
    assert c.get("/api/v1/metrics/factory", params=WINDOW, headers=_as(tokens["viewer-a"])).status_code == 200
    s = _as(tokens["supervisor"])
    full = c.get("/api/v1/metrics/workstations", params=b, headers=s).json()
    assert [(r["station_id"], r["event_count"]) for r in full] == [("SA1", 0), ("SB1", 8)]
    assert c.get("/api/v1/metrics/factory", params=b, headers=s).json()["total_production_count"] == 2


def test_a_read_naming_any_id_is_audited_with_that_id(settings: ApiSettings) -> None:
    """Ids outside latin-1 (no stored id has them, but anyone can ask) are recorded exactly."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        supervisor = create_token(conn, Role.SUPERVISOR, "lead")
    with TestClient(create_app(settings)) as c:
        r = c.get("/api/events/recent", params={"worker_id": "W\u2603 1%"}, headers=_as(supervisor))
        assert r.status_code == 200 and r.json() == []
    assert [row[4] for row in _audit_rows(settings.database_url)] == ["W\u2603 1%"]


@pytest.mark.wallclock
def test_working_now_about_fewer_than_k_people_is_withheld(settings: ApiSettings) -> None:
    config = settings.model_copy(update={"response_cache_ttl_s": 0})  # k = 5 everywhere
    with TestClient(create_app(config), headers={"Authorization": "Bearer test-admin-token"}) as c:
        started = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        for worker, station in (("WA1", "SA1"), ("WA2", "SA2")):
            event = {
                **_events(OWN, 8, 1)[0],
                "timestamp": started,
                "worker_id": worker,
                "station_id": station,
            }
            event.pop("seq"), event.pop("gateway_id"), event.pop("camera_id")
            assert c.post("/api/v1/events", json={**event, "duration_s": 0}).status_code == 201
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            viewer = create_token(conn, Role.VIEWER, "v")
            supervisor = create_token(conn, Role.SUPERVISOR, "s")
        seen = c.get("/api/now", headers=_as(supervisor)).json()
        hidden = c.get("/api/now", headers=_as(viewer)).json()
    assert seen["active_workers"] == 2 and not seen["withheld"]
    assert {w["worker_id"] for w in seen["working"]} == {"WA1", "WA2"}
    assert hidden == {**hidden, "active_workers": None, "working": [], "withheld": True}
