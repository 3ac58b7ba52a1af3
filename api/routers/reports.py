"""The shift report as an HTML page (docs/metrics.md, "Shift report"): figures, boards, losses, gateways."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Response

from api.deps import Conn, Supervisor
from api.metrics.engine import site_list
from api.routers import losses as loss_routes
from api.routers import metrics, shift_metrics
from api.routers.metrics import ScopeDep

router = APIRouter(tags=["reports"])
TOP_LOSSES = 5


def _v(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return escape(str(value))


def _table(caption: str, head: list[str], rows: list[list[Any]]) -> str:
    out = [f"<table><caption>{escape(caption)}</caption><thead><tr>"]
    out += [f'<th scope="col">{escape(h)}</th>' for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_v(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


@router.get("/reports/shift", response_class=Response)
def shift_report(conn: Conn, s: ScopeDep, role: Supervisor) -> Response:
    """The shift report for a site and window (``shift``, ``from``, ``to``, ``site_id``) as an HTML page.

    Holds the target and OEE figures per station and for the site, each line's hour-by-hour board,
    the top losses and the gateways' health (supervisor or admin: gateway health is theirs).
    """
    factory = metrics.factory(conn, s)
    stations = metrics.workstations(conn, s, Response())
    # The request's site, or a site-scoped token's sites (api.access); None: every site.
    sites = site_list(s.site_id)
    lines = conn.execute(
        "SELECT line_id FROM lines WHERE %(s)s::text[] IS NULL OR site_id = ANY(%(s)s) ORDER BY line_id",
        {"s": sites},
    ).fetchall()
    pareto = loss_routes.losses(conn, s, role)
    gateways = conn.execute(
        "SELECT gateway_id, state, last_seen, status->>'backlog' FROM gateways "
        "WHERE %(s)s::text[] IS NULL OR site_id = ANY(%(s)s) ORDER BY gateway_id",
        {"s": sites},
    ).fetchall()
    t = factory.targets
    figures = ("target_units", "availability_percentage", "performance_percentage", "quality_percentage")
    site_row: list[Any] = [factory.total_production_count]
    site_row += [getattr(t, k) if t else None for k in (*figures, "oee_percentage")]
    columns = ("station_id", "total_units_produced", *figures, "oee_percentage")
    station_rows: list[list[Any]] = [[getattr(x, k) for k in columns] for x in stations]
    site_head = ["Units", "Target units", "Availability %", "Performance %", "Quality %", "OEE %"]
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shift report</title></head><body>',
        f"<h1>Shift report: {escape(', '.join(sites) if sites else 'all sites')}</h1>",
        f"<p>{escape(s.lo.isoformat())} to {escape(s.hi.isoformat())} ({escape(s.timezone)})</p>",
        _table("Site", site_head, [site_row]),
        _table("Stations", ["Station", *site_head], station_rows),
    ]
    for (line_id,) in lines:
        board = shift_metrics.hour_by_hour(conn, s, role, line_id=line_id)
        parts.append(
            _table(
                f"Hour by hour: line {line_id} (station {board.station_id})",
                ["Hour", "Target", "Actual", "Cumulative gap"],
                [
                    [h.hour_start.isoformat(), h.target_units, h.actual_units, h.cumulative_gap]
                    for h in board.hours
                ],
            )
        )
    parts.append(
        _table(
            f"Top losses (lost {pareto.lost_hours:.2f} h; planned breaks {pareto.planned_break_hours:.2f} h)",
            ["Reason", "Lost hours", "Share %"],
            [[r.label, r.lost_hours, r.share_percentage] for r in pareto.rows[:TOP_LOSSES]],
        )
    )
    parts.append(
        _table(
            "Gateways",
            ["Gateway", "State", "Last seen", "Backlog"],
            [[g[0], g[1], g[2].isoformat() if g[2] else None, g[3]] for g in gateways],
        )
    )
    parts.append("</body></html>")
    return Response("".join(parts), media_type="text/html; charset=utf-8")
