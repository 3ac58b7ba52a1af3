"""What a reader may see: its sites and whether it has the per-person right (docs/privacy.md).

One dependency, :data:`Reader`, gives every read route an :class:`Access`:

- ``access.sites``: the token's sites (None: every site). ``access.site(site_id)``
  turns a request's ``site_id`` into the metrics engine's site filter (one site,
  or the token's set when none is named) and answers 404 for a site outside
  the token's, so a route cannot read outside them by forgetting a filter.
- ``access.check(conn, "worker" | "station", id)``: 404 for an id not seen at the
  token's sites, in the API's error format (no hint whether it exists elsewhere).
- ``access.audited(response, worker_id)``: marks an answer that shows per-person data; the
  front door (``api.middleware``) records the read in the append-only privacy audit.
- ``access.per_person``: supervisor and above may see per-person figures;
  ``access.require_per_person()`` answers 403 for the others, who see
  stations and teams only (:data:`HIDDEN_WORKER` stands in for worker ids).

:data:`AllSites` guards routes whose answer spans every site (the sequence
audit, Prometheus, seeding, token management): site-scoped tokens get 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

import psycopg
from fastapi import Depends, HTTPException, Request, Response

from api.deps import _caller, require
from api.metrics.engine import SiteFilter
from api.security import RANK, Caller, Role, Sites
from takt.store import privacy

Kind = Literal["worker", "station"]
# Shown instead of a worker id to readers without the per-person right.
HIDDEN_WORKER = "(hidden)"
_TABLES = {"worker": ("worker_id", "rollup_worker_day"), "station": ("station_id", "rollup_station_day")}


@dataclass(frozen=True, slots=True)
class Access:
    caller: Caller
    # What the audit names as read: method, path and query; and the request id.
    resource: str = ""
    request_id: str | None = None

    @property
    def role(self) -> Role:
        return self.caller.role

    @property
    def sites(self) -> Sites:
        return self.caller.sites

    @property
    def per_person(self) -> bool:
        """The right to see figures about one person: supervisor and above."""
        return RANK[self.caller.role] >= RANK[Role.SUPERVISOR]

    def allows(self, site_id: str | None) -> bool:
        return self.sites is None or (site_id is not None and site_id in self.sites)

    def site(self, site_id: str | None) -> SiteFilter:
        """The site filter for a request naming ``site_id`` (or none)."""
        if self.sites is None:
            return site_id
        if site_id is None:
            return self.sites
        if site_id not in self.sites:
            raise HTTPException(404, f"unknown site {site_id!r}")
        return site_id

    def one_site(self, site_id: str | None) -> str | None:
        """A single site for routes that compare one subject (drift): the named one, the token's only
        one, or 422 for a token of several sites that names none."""
        chosen = self.site(site_id)
        if chosen is None or isinstance(chosen, str):
            return chosen
        if len(chosen) == 1:
            return next(iter(chosen))
        raise HTTPException(422, "this token reads several sites: name one with site_id")

    def check(self, conn: psycopg.Connection[Any], kind: Kind, subject_id: str) -> None:
        """404 unless ``subject_id`` has events at one of the token's sites (any id for unscoped tokens)."""
        if self.sites is None:
            return
        column = _TABLES[kind][0]
        row = conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM events WHERE {column} = %s AND site_id = ANY(%s::text[]))",
            (subject_id, sorted(self.sites)),
        ).fetchone()
        if not (row and row[0]):
            raise HTTPException(404, f"unknown {column} {subject_id!r}")

    def members(self, conn: psycopg.Connection[Any], kind: Kind) -> set[str] | None:
        """Ids seen at the token's sites (None: no restriction): rolled up into a day, or in events since
        the newest day rollup. Lists add the ids their own (site-filtered) totals found."""
        if self.sites is None:
            return None
        column, table = _TABLES[kind]
        sites = sorted(self.sites)
        rows = conn.execute(
            f"SELECT DISTINCT {column} FROM {table} WHERE site_id = ANY(%(s)s::text[]) "
            f"UNION SELECT DISTINCT {column} FROM events WHERE site_id = ANY(%(s)s::text[]) "
            f"AND ts >= (SELECT coalesce(max(bucket), '-infinity') FROM {table})",
            {"s": sites},
        ).fetchall()
        return {str(r[0]) for r in rows}

    def visible(self, conn: psycopg.Connection[Any], kind: Kind, ids: Iterable[str]) -> set[str] | None:
        """The subset of ``ids`` a list may show beyond :meth:`members` (None: all)."""
        found = self.members(conn, kind)
        return None if found is None else found | set(ids)

    def require_per_person(self) -> None:
        if not self.per_person:
            raise HTTPException(
                403, "per-person figures need the supervisor role; this token sees stations and teams only"
            )

    def require_all_sites(self) -> None:
        if self.sites is not None:
            raise HTTPException(403, "needs a token for every site; this one is limited to some sites")

    def audited(self, conn: psycopg.Connection[Any], response: Response, subject: str | None = None) -> None:
        """Record that this reader got per-person data about ``subject`` (None: every visible worker)
        and mark the answer, so the front door records each replay of it from the response cache."""
        if not self.per_person:
            return
        privacy.record(conn, **audit_fields(self.caller, self.resource, subject, self.request_id))
        # Percent-encoded: an id may hold characters a header cannot (api.middleware decodes it).
        response.headers[privacy.AUDIT_HEADER] = quote(subject or "*", safe="*")

    def worker(self, worker_id: str) -> str:
        """A worker id as this reader may see it."""
        return worker_id if self.per_person else HIDDEN_WORKER


def audit_fields(
    caller: Caller, resource: str, subject: str | None, request_id: str | None
) -> dict[str, Any]:
    """The privacy audit's record of one per-person read (takt.store.privacy.record's arguments)."""
    return {
        "actor": caller.actor,
        "role": caller.role.value,
        "action": "read",
        "resource": resource,
        "subject": None if subject in (None, "*") else subject,
        "sites": None if caller.sites is None else sorted(caller.sites),
        "detail": {"request_id": request_id},
    }


def resource_of(method: str, path: str, query: str) -> str:
    return f"{method} {path}" + (f"?{query}" if query else "")


# async: no I/O here, and FastAPI runs a plain def dependency in a worker thread (a hop per request).
async def _reader(
    request: Request,
    caller: Annotated[Caller, Depends(_caller)],
    _: Annotated[Role, Depends(require(Role.VIEWER))],
) -> Access:
    resource = resource_of(request.method, request.url.path, request.url.query)
    return Access(caller, resource, getattr(request.state, "request_id", None))


async def _all_sites(access: Annotated[Access, Depends(_reader)]) -> Access:
    access.require_all_sites()
    return access


Reader = Annotated[Access, Depends(_reader)]
AllSites = Annotated[Access, Depends(_all_sites)]
