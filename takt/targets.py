"""Targets in force and target units over spans of time: pure, no I/O (docs/metrics.md, "Targets").

A station's targets are changes ``(effective_from, ideal_cycle_time_s)``: the
target in force at ``t`` is the change with the latest ``effective_from`` <=
``t`` (ties: the one recorded last, i.e. later in the list). The alerts'
"behind target" rules and the metrics both use :func:`target_units`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Change:
    """One target change: from ``effective_from`` on, ``ideal_cycle_time_s`` seconds per unit."""

    effective_from: datetime
    ideal_cycle_time_s: float


def ordered(changes: Iterable[Change]) -> list[Change]:
    """Changes by ``effective_from``; of several at the same instant only the last one given counts."""
    latest: dict[datetime, Change] = {}
    for c in changes:
        latest[c.effective_from] = c
    return [latest[k] for k in sorted(latest)]


def in_force(changes: Sequence[Change], at: datetime) -> float | None:
    """The ideal cycle time in force at ``at`` (None before the first change)."""
    current: float | None = None
    for c in ordered(changes):
        if c.effective_from > at:
            break
        current = c.ideal_cycle_time_s
    return current


def pieces(changes: Sequence[Change], spans: Iterable[Span]) -> list[tuple[datetime, datetime, float | None]]:
    """``spans`` cut where a change takes effect, each piece with the ideal cycle time in force."""
    steps = ordered(changes)
    out: list[tuple[datetime, datetime, float | None]] = []
    for lo, hi in spans:
        a = lo
        while a < hi:
            current: float | None = None
            nxt = hi
            for c in steps:
                if c.effective_from <= a:
                    current = c.ideal_cycle_time_s
                else:
                    nxt = min(nxt, c.effective_from)
                    break
            out.append((a, nxt, current))
            a = nxt
    return out


def target_units(changes: Sequence[Change], spans: Iterable[Span]) -> float | None:
    """Units the targets ask for over ``spans`` (planned production time): Σ seconds / cycle time.

    None when no target is in force anywhere in them (time without a target asks for nothing).
    """
    total = 0.0
    targeted = False
    for a, b, ict in pieces(changes, spans):
        if ict is not None:
            targeted = True
            total += (b - a).total_seconds() / ict
    return total if targeted else None


def boundaries(changes: Iterable[Change], lo: datetime, hi: datetime) -> list[datetime]:
    """The instants inside (lo, hi) where a target changes."""
    return sorted({c.effective_from for c in changes if lo < c.effective_from < hi})


def cut(spans: Iterable[Span], at: Sequence[datetime]) -> list[Span]:
    """``spans`` cut at the instants ``at`` (sorted), so each piece has one target per station."""
    out: list[Span] = []
    for lo, hi in spans:
        a = lo
        for t in at:
            if a < t < hi:
                out.append((a, t))
                a = t
        out.append((a, hi))
    return out
