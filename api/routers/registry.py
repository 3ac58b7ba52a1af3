"""Workers and workstations."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import Conn, Viewer

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


@router.get("/workers")
def workers(conn: Conn, _: Viewer) -> list[Worker]:
    rows = conn.execute(
        "SELECT worker_id, name, department, shift, registered FROM workers ORDER BY worker_id"
    ).fetchall()
    return [Worker(worker_id=r[0], name=r[1], department=r[2], shift=r[3], registered=r[4]) for r in rows]


@router.get("/workstations")
def workstations(conn: Conn, _: Viewer) -> list[Workstation]:
    rows = conn.execute(
        "SELECT station_id, name, type, location, capacity_per_hour, registered FROM workstations "
        "ORDER BY station_id"
    ).fetchall()
    return [
        Workstation(
            station_id=r[0], name=r[1], type=r[2], location=r[3], capacity_per_hour=r[4], registered=r[5]
        )
        for r in rows
    ]
