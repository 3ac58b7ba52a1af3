"""The minimum group size k (docs/metrics.md, "Minimum group size"): how many people a figure is about.

A station's figure over a window is about the people seen at that station in the window: the
distinct worker ids of its production events (pseudonyms count as ids), plus one for ``unknown``
when it appears (at least one unidentified person). A factory, site or model figure is about
the people seen at any station. Readers without the per-person right (api.access) get only
figures about at least k people; k is the site's ``min_group`` (TAKT_PRIVACY, default 5), the
largest of the sites a request spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from api.metrics.engine import Labelled, SiteFilter
from api.settings import ApiSettings

_PEOPLE = """
SELECT w.label, e.station_id, e.worker_id
FROM unnest(%(labels)s::int[], %(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS w(label, a, b)
CROSS JOIN LATERAL (
    SELECT DISTINCT station_id, worker_id FROM events e
    WHERE e.ts >= w.a AND e.ts < w.b AND NOT e.shadow
      AND (%(sites)s::text[] IS NULL OR coalesce(e.site_id, '') = ANY(%(sites)s::text[]))
) e
"""


def _sites(site_id: SiteFilter) -> list[str] | None:
    if site_id is None:
        return None
    return [site_id] if isinstance(site_id, str) else sorted(site_id)


def people(
    conn: psycopg.Connection[Any], windows: Sequence[Labelled], site_id: SiteFilter
) -> tuple[dict[tuple[int, str], int], dict[int, int]]:
    """People per (label, station) and per label over all stations, seen in each labelled window."""
    rows = conn.execute(
        _PEOPLE,
        {
            "labels": [w[0] for w in windows],
            "starts": [w[1] for w in windows],
            "ends": [w[2] for w in windows],
            "sites": _sites(site_id),
        },
    ).fetchall()
    per_station: dict[tuple[int, str], set[str]] = {}
    per_label: dict[int, set[str]] = {}
    for label, station, worker in rows:
        per_station.setdefault((label, station), set()).add(worker)
        per_label.setdefault(label, set()).add(worker)
    return (
        {key: len(ids) for key, ids in per_station.items()},
        {label: len(ids) for label, ids in per_label.items()},
    )


def reader_k(settings: ApiSettings, per_person: bool, site_id: SiteFilter) -> int:
    """k for a reader: 0 with the per-person right, else the sites' largest ``min_group``."""
    if per_person:
        return 0
    configured = {site: p.min_group for site, p in settings.privacy.items() if site != "*"}
    return min_group(site_id, configured, settings.site_privacy("*").min_group)


def min_group(site_id: SiteFilter, configured: dict[str, int], default: int) -> int:
    """k for a request spanning ``site_id`` (None: every site): the largest k among its sites."""
    if site_id is None:
        return max([default, *configured.values()])
    sites = [site_id] if isinstance(site_id, str) else sorted(site_id)
    return max(configured.get(s, default) for s in sites)
