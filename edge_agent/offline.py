"""Offline runs: the whole agent without a broker, every event written as one JSON line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

from edge_agent.buffer import EventBuffer
from takt.contract import Event, encode_event


class JsonlEventBuffer(EventBuffer):
    """The agent's own buffer (so seqs are assigned as always) that also writes each event,
    in the contract's Event form with its seq, to a JSONL file as soon as it is committed."""

    def __init__(self, path: Path, out: IO[bytes]) -> None:
        super().__init__(path, synchronous="NORMAL")
        self._out = out

    def append(self, events: Sequence[Event], now: float | None = None) -> list[int]:
        seqs = super().append(events, now)
        for seq, event in zip(seqs, events, strict=True):
            self._out.write(encode_event(event.model_copy(update={"seq": seq})) + b"\n")
        self._out.flush()
        # Nothing will ever publish these: keep the on-disk copy from growing.
        if seqs:
            self.delete_ranges([(seqs[0], seqs[-1])])
        return seqs
