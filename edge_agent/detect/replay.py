"""Detections read from a JSONL file instead of a model (tests, re-analysis, debugging).

One line per frame: ``{"t": 1.2, "detections": [{"label": "person", "confidence": 0.9,
"box": [x1, y1, x2, y2], "track_id": 3}]}`` where ``t`` is seconds since the first frame.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import orjson

from edge_agent import EdgeError
from edge_agent.detect.base import Detection, Image


class ReplayDetector:
    tracks = True

    def __init__(self, path: Path, model_version: str = "replay@1", tolerance_s: float = 0.25) -> None:
        self.model_version = model_version
        self.tolerance_s = tolerance_s
        self._times: list[float] = []
        self._frames: list[list[Detection]] = []
        try:
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            raise EdgeError(f"replay file {path}: {exc}") from None
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
                dets = [
                    Detection(
                        str(d["label"]),
                        float(d.get("confidence", 1.0)),
                        (float(d["box"][0]), float(d["box"][1]), float(d["box"][2]), float(d["box"][3])),
                        None if d.get("track_id") is None else int(d["track_id"]),
                    )
                    for d in doc.get("detections", [])
                ]
                records.append((float(doc["t"]), dets))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
                raise EdgeError(f"replay file {path}, line {number}: {exc}") from None
        records.sort(key=lambda r: r[0])
        self._times = [r[0] for r in records]
        self._frames = [r[1] for r in records]
        self._origin: float | None = None

    def detect(self, frame: Image, timestamp_s: float) -> list[Detection]:
        if self._origin is None:
            self._origin = timestamp_s
        t = timestamp_s - self._origin
        i = bisect.bisect_right(self._times, t + 1e-6) - 1
        if i < 0 or t - self._times[i] > self.tolerance_s:
            return []
        return list(self._frames[i])

    def close(self) -> None:
        return None
