"""CSV answers for the metrics routes: ``Accept: text/csv`` or ``?format=csv`` (docs/metrics.md, "CSV").

A route's JSON answer becomes rows: a list of objects is one row each; an
object holding one list of objects (a board's hours, a Pareto's rows, a line's
stations) is one row per item, with the object's other plain fields repeated
in front; any other object is one row. Nested objects flatten to
``parent.child`` columns; lists of plain values join with ``;``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

CSV_TYPE = "text/csv; charset=utf-8"


def wants_csv(query: str | None, accept: str | None) -> bool:
    """``format=csv`` in the query, or an Accept header naming text/csv before any JSON type."""
    if query and any(part == "format=csv" for part in query.split("&")):
        return True
    if not accept:
        return False
    types = [t.split(";")[0].strip().lower() for t in accept.split(",")]
    if "text/csv" not in types:
        return False
    json_at = [i for i, t in enumerate(types) if t in ("application/json", "*/*")]
    return not json_at or types.index("text/csv") < json_at[0]


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out[prefix] = ";".join("" if v is None else str(v) for v in value)
    else:
        out[prefix] = value


def _table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, dict) for x in value)


def rows(doc: Any) -> list[dict[str, Any]]:
    """The CSV rows of a JSON answer (module docstring)."""
    if isinstance(doc, list):
        out = []
        for item in doc:
            row: dict[str, Any] = {}
            _flat("", item if isinstance(item, dict) else {"value": item}, row)
            out.append(row)
        return out
    if isinstance(doc, dict):
        tables = [
            k for k, v in doc.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
        ]
        if len(tables) == 1:
            head: dict[str, Any] = {}
            _flat("", {k: v for k, v in doc.items() if k != tables[0]}, head)
            return [{**head, **r} for r in rows(doc[tables[0]])]
        row = {}
        _flat("", doc, row)
        return [row]
    return [{"value": doc}]


def _cell(value: Any) -> Any:
    """A cell; text that a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(doc: Any) -> str:
    table = rows(doc)
    columns: list[str] = []
    for r in table:
        columns += [c for c in r if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for r in table:
        writer.writerow({k: _cell(v) for k, v in r.items()})
    return buf.getvalue()


class CsvRoute(APIRoute):
    """A route that answers CSV when asked (``Accept: text/csv`` or ``?format=csv``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            response = await handler(request)
            if (
                response.status_code != 200
                or not wants_csv(request.url.query, request.headers.get("accept"))
                or not (response.media_type or "").startswith("application/json")
            ):
                return response
            body = bytes(response.body)
            name = request.url.path.rstrip("/").rsplit("/", 1)[-1] or "metrics"
            return Response(
                to_csv(orjson.loads(body)),
                media_type=CSV_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )

        return handle
