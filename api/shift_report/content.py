"""What a shift report holds, and the same tables written as an HTML page and as a PDF (fpdf2).

:func:`build` calls the functions behind the JSON routes (factory and station
metrics, hour-by-hour boards, the loss Pareto), so every figure in the report
is the API's own for the same window; :func:`html` and :func:`pdf` lay out
the same cells, formatted once by :func:`cell`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi import Response

from api.metrics.engine import site_list
from api.routers import losses as loss_routes
from api.routers import metrics, shift_metrics
from api.routers.metrics import Scope
from api.security import Role

TOP_LOSSES = 5
FIGURES = ("target_units", "availability_percentage", "performance_percentage", "quality_percentage")
SITE_HEAD = ["Units", "Target units", "Availability %", "Performance %", "Quality %", "OEE %"]
MISSING = "—"


def cell(value: Any) -> str:
    """A value as the report shows it: null as '—', floats with one decimal and thousands separators."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass(frozen=True, slots=True)
class Table:
    caption: str
    head: list[str]
    rows: list[list[str]]


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    period: str
    tables: list[Table]


def _table(caption: str, head: list[str], rows: list[list[Any]]) -> Table:
    return Table(caption, head, [[cell(c) for c in row] for row in rows])


def _local(at: datetime | None, tz: ZoneInfo) -> str | None:
    return None if at is None else at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def build(conn: psycopg.Connection[Any], s: Scope, *, shift: str | None = None) -> Report:
    """The report of the scope's site(s) and window (``shift``: the shift's name, for the title)."""
    tz = ZoneInfo(s.timezone)
    factory = metrics.factory(conn, s)
    stations = metrics.workstations(conn, s, Response())
    # The request's site, or a site-scoped token's sites (api.access); None: every site.
    sites = site_list(s.site_id)
    lines = conn.execute(
        "SELECT line_id FROM lines WHERE %(s)s::text[] IS NULL OR site_id = ANY(%(s)s) ORDER BY line_id",
        {"s": sites},
    ).fetchall()
    pareto = loss_routes.losses(conn, s, Role.SUPERVISOR)
    gateways = conn.execute(
        """
        SELECT g.gateway_id, g.state, g.last_seen, g.status->>'backlog',
               (SELECT count(*) FROM events e WHERE e.gateway_id = g.gateway_id
                AND e.ts >= %(lo)s AND e.ts < %(hi)s)
        FROM gateways g WHERE %(s)s::text[] IS NULL OR g.site_id = ANY(%(s)s) ORDER BY g.gateway_id
        """,
        {"s": sites, "lo": s.lo, "hi": s.hi},
    ).fetchall()
    t = factory.targets
    site_row: list[Any] = [factory.total_production_count]
    site_row += [getattr(t, k) if t else None for k in (*FIGURES, "oee_percentage")]
    site_row += [t.planned_production_hours if t else None, factory.planned_break_hours]
    columns = ("station_id", "total_units_produced", *FIGURES, "oee_percentage")
    tables = [
        _table("Site", [*SITE_HEAD, "Planned production h", "Planned breaks h"], [site_row]),
        _table("Stations", ["Station", *SITE_HEAD], [[getattr(x, k) for k in columns] for x in stations]),
    ]
    for (line_id,) in lines:
        board = shift_metrics.hour_by_hour(conn, s, Role.SUPERVISOR, line_id=line_id)
        tables.append(
            _table(
                f"Hour by hour: line {line_id} (station {board.station_id})",
                ["Hour", "Target", "Actual", "Cumulative gap"],
                [
                    [_local(h.hour_start, tz), h.target_units, h.actual_units, h.cumulative_gap]
                    for h in board.hours
                ],
            )
        )
    tables.append(
        _table(
            f"Top losses (lost {pareto.lost_hours:.2f} h; planned breaks {pareto.planned_break_hours:.2f} h)",
            ["Reason", "Lost hours", "Share %"],
            [[r.label, r.lost_hours, r.share_percentage] for r in pareto.rows[:TOP_LOSSES]],
        )
    )
    tables.append(
        _table(
            "Gateways",
            ["Gateway", "State", "Last seen", "Backlog", "Events in window"],
            [[g[0], g[1], _local(g[2], tz), g[3], int(g[4])] for g in gateways],
        )
    )
    where = ", ".join(sites) if sites else "all sites"
    title = f"Shift report: {where}" + (f", shift {shift}" if shift else "")
    period = f"{_local(s.lo, tz)} to {_local(s.hi, tz)} ({s.timezone})"
    return Report(title, period, tables)


def html(report: Report) -> str:
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(report.title)}</title></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        f"<p>{escape(report.period)}</p>",
    ]
    for t in report.tables:
        parts.append(f"<table><caption>{escape(t.caption)}</caption><thead><tr>")
        parts += [f'<th scope="col">{escape(h)}</th>' for h in t.head]
        parts.append("</tr></thead><tbody>")
        for row in t.rows:
            parts.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "".join(parts)


def _pdf_text(text: str) -> str:
    # The core fonts cover Windows-1252 (em dash included); anything else becomes '?'.
    return text.encode("cp1252", "replace").decode("cp1252")


def pdf(report: Report) -> bytes:
    """The report as a PDF (fpdf2, the ``pdf`` extra): title, period, then each table with its caption."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    doc = FPDF(format="A4")
    doc.core_fonts_encoding = "windows-1252"
    doc.set_title(_pdf_text(report.title))
    doc.set_creator("Takt")
    doc.set_auto_page_break(auto=True, margin=15)
    doc.add_page()
    doc.set_font("Helvetica", "B", 15)
    doc.multi_cell(0, 8, _pdf_text(report.title), new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", "", 10)
    doc.multi_cell(0, 6, _pdf_text(report.period), new_x="LMARGIN", new_y="NEXT")
    for t in report.tables:
        doc.ln(3)
        doc.set_font("Helvetica", "B", 11)
        doc.multi_cell(0, 6, _pdf_text(t.caption), new_x="LMARGIN", new_y="NEXT")
        doc.set_font("Helvetica", "", 8)
        with doc.table(
            headings_style=FontFace(emphasis="BOLD"),
            line_height=5,
            text_align="LEFT",
            first_row_as_headings=True,
        ) as table:
            for row in [t.head, *t.rows]:
                r = table.row()
                for c in row:
                    r.cell(_pdf_text(c))
        if not t.rows:
            doc.multi_cell(0, 5, "(none)", new_x="LMARGIN", new_y="NEXT")
    return bytes(doc.output())
