"""The metric definitions of docs/metrics.md, computed straight from raw events in pure Python."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

STATES = ("working", "idle", "absent")


@dataclass(frozen=True)
class Raw:
    event_id: Any
    ts: datetime
    worker_id: str
    station_id: str
    event_type: str
    count: int
    duration_s: float | None
    shadow: bool
    model_version: str | None
    confidence: float = 0.9
    # product_count only: rejected units (None: not reported) and the SKU.
    rejected: int | None = None
    sku: str | None = None


def effective_durations(events: list[Raw], gap: float) -> dict[Any, float]:
    parts: dict[tuple[Any, ...], list[Raw]] = defaultdict(list)
    for e in events:
        if e.event_type in STATES:
            key = (
                e.worker_id,
                e.station_id if e.worker_id == "unknown" else "",
                e.shadow,
                (e.model_version or "") if e.shadow else "",
            )
            parts[key].append(e)
    out: dict[Any, float] = {}
    for seq in parts.values():
        seq.sort(key=lambda e: (e.ts, e.event_id))
        for i, e in enumerate(seq):
            if e.duration_s is not None:
                out[e.event_id] = e.duration_s
            elif i + 1 < len(seq):
                out[e.event_id] = min((seq[i + 1].ts - e.ts).total_seconds(), gap)
            else:
                out[e.event_id] = 0.0
    return out


def _overlap(s: datetime, e: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(e, hi) - max(s, lo)).total_seconds())


def _union(spans: list[tuple[datetime, datetime]]) -> float:
    total, end = 0.0, None
    for s, e in sorted(spans):
        if end is None or s > end:
            total += (e - s).total_seconds()
            end = e
        elif e > end:
            total += (e - end).total_seconds()
            end = e
    return total


def metrics(events: list[Raw], lo: datetime, hi: datetime, gap: float) -> dict[str, Any]:
    unique = list({e.event_id: e for e in events}.values())
    eff = effective_durations(unique, gap)
    prod = [e for e in unique if not e.shadow]
    workers: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    stations: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"units": 0, "events": 0, "occupied": [], "working": [], "observed": []}
    )
    for e in unique:
        workers[e.worker_id]  # every stored worker is listed
        stations[e.station_id]
    for e in prod:
        inside = lo <= e.ts < hi
        w, st = workers[e.worker_id], stations[e.station_id]
        if inside:
            w["events"] += 1
            st["events"] += 1
            if e.event_type == "product_count":
                w["units"] += e.count
                st["units"] += e.count
        if e.event_type in STATES:
            end = e.ts + timedelta(seconds=eff[e.event_id])
            w[e.event_type] += _overlap(e.ts, end, lo, hi)
            s, en = max(e.ts, lo), min(end, hi)
            if en > s:
                st["observed"].append((s, en))
                if e.event_type != "absent":
                    st["occupied"].append((s, en))
                if e.event_type == "working":
                    st["working"].append((s, en))
    worker_out = {}
    for wid, w in workers.items():
        active, idle = w["working"], w["idle"]
        worker_out[wid] = {
            "total_active_time_hours": active / 3600,
            "total_idle_time_hours": idle / 3600,
            "utilization_percentage": active / (active + idle) * 100 if active + idle else 0.0,
            "total_units_produced": int(w["units"]),
            "units_per_hour": w["units"] / (active / 3600) if active else 0.0,
            "event_count": int(w["events"]),
        }
    station_out = {}
    for sid, st in stations.items():
        occupied, working, observed = _union(st["occupied"]), _union(st["working"]), _union(st["observed"])
        station_out[sid] = {
            "occupancy_time_hours": occupied / 3600,
            "utilization_percentage": working / observed * 100 if observed else 0.0,
            "total_units_produced": st["units"],
            "throughput_rate": st["units"] / (occupied / 3600) if occupied else 0.0,
            "event_count": st["events"],
        }
    active_total = sum(w["working"] for w in workers.values())
    units_total = sum(int(w["units"]) for w in workers.values())
    utils = [
        v["utilization_percentage"]
        for k, v in worker_out.items()
        if workers[k]["working"] + workers[k]["idle"]
    ]
    factory = {
        "total_productive_time_hours": active_total / 3600,
        "total_production_count": units_total,
        "average_production_rate": units_total / (active_total / 3600) if active_total else 0.0,
        "average_utilization_percentage": sum(utils) / len(utils) if utils else 0.0,
        "total_events": sum(int(w["events"]) for w in workers.values()),
    }
    return {"workers": worker_out, "workstations": station_out, "factory": factory}


def models(
    events: list[Raw], lo: datetime, hi: datetime, gap: float
) -> dict[tuple[str, bool], dict[str, float]]:
    """``/metrics/models``: per model version and shadow flag (shadow events included)."""
    unique = list({e.event_id: e for e in events}.values())
    eff = effective_durations(unique, gap)
    acc: dict[tuple[str, bool], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in unique:
        m = acc[(e.model_version or "", e.shadow)]
        if lo <= e.ts < hi:
            m["events"] += 1
            m["conf"] += e.confidence
            if e.event_type == "product_count":
                m["units"] += e.count
        if e.event_type in STATES:
            m[e.event_type] += _overlap(e.ts, e.ts + timedelta(seconds=eff[e.event_id]), lo, hi)
    out = {}
    for key, m in acc.items():
        if not (m["events"] or m["working"] or m["idle"] or m["absent"]):
            continue
        working, idle = m["working"], m["idle"]
        out[key] = {
            "event_count": int(m["events"]),
            "total_units": int(m["units"]),
            "working_hours": working / 3600,
            "idle_hours": idle / 3600,
            "absent_hours": m["absent"] / 3600,
            "utilization_percentage": working / (working + idle) * 100 if working + idle else 0.0,
            "units_per_working_hour": m["units"] / (working / 3600) if working else 0.0,
            "mean_confidence": m["conf"] / m["events"] if m["events"] else 0.0,
        }
    return out


def _percentile_cont(values: list[float], p: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    pos = p * (len(ordered) - 1)
    below = int(pos)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (pos - below)


def cycle_time(
    events: list[Raw], station: str, lo: datetime, hi: datetime
) -> tuple[int, float | None, float | None]:
    """(gaps, median s, p90 s) between consecutive unit events (count > 0) at a station in [lo, hi)."""
    unique = list({e.event_id: e for e in events}.values())
    units = sorted(
        (e.ts, str(e.event_id))
        for e in unique
        if e.station_id == station
        and not e.shadow
        and e.event_type == "product_count"
        and e.count > 0
        and lo <= e.ts < hi
    )
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(units)]
    if not gaps:
        return 0, None, None
    return len(gaps), _percentile_cont(gaps, 0.5), _percentile_cont(gaps, 0.9)
