"""Workers and workstations."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api.access import Reader
from api.deps import Conn

router = APIRouter(tags=["registry"])


class Worker(BaseModel):
    worker_id: str
    name: str
    department: str | None = None
    shift: str | None = None
    registered: bool


class Workstation(BaseModel):
    station_id: str
    name: str
    type: str | None = None
    location: str | None = None
    capacity_per_hour: float | None = None
    registered: bool


@router.get("/workers", responses={403: {"description": "Needs the per-person right (supervisor)."}})
def workers(conn: Conn, access: Reader, response: Response) -> list[Worker]:
    """The roster (a site-scoped token: the workers seen at its sites)."""
    access.require_per_person()
    access.audited(conn, response)
    rows = conn.execute(
        "SELECT worker_id, name, department, shift, registered FROM workers ORDER BY worker_id"
    ).fetchall()
    visible = access.members(conn, "worker")
    if visible is not None:
        rows = [r for r in rows if r[0] in visible]
    return [Worker(worker_id=r[0], name=r[1], department=r[2], shift=r[3], registered=r[4]) for r in rows]


@router.get("/workstations")
def workstations(conn: Conn, access: Reader) -> list[Workstation]:
    """Every workstation (a site-scoped token: those seen at its sites)."""
    rows = conn.execute(
        "SELECT station_id, name, type, location, capacity_per_hour, registered FROM workstations "
        "ORDER BY station_id"
    ).fetchall()
    visible = access.members(conn, "station")
    if visible is not None:
        rows = [r for r in rows if r[0] in visible]
    return [
        Workstation(
            station_id=r[0], name=r[1], type=r[2], location=r[3], capacity_per_hour=r[4], registered=r[5]
        )
        for r in rows
    ]
