"""Pictures for label samples, cut from a recording only when the export is asked for them.

Events never carry frames, so the pictures come from a recording of the camera (kept on the
gateway or copied by the site): for each sample, the frame at the middle of its window. They
show people as they are (labellers must see them), so they are written only on request
(``takt models export-samples --with-frames``) and are the site's to keep safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from models.samples import Sample, frame_name, frame_time


class FramesError(Exception):
    """The recording cannot be read, or the frames cannot be written."""


def frame_indices(samples: Sequence[Sample], start: datetime, fps: float) -> list[int]:
    """The recording's frame number for each sample (negative: before the recording began)."""
    return [round((frame_time(s) - start).total_seconds() * fps) for s in samples]


def cut_frames(samples: Sequence[Sample], footage: Path, start: datetime, out_dir: Path) -> list[list[str]]:
    """Write each sample's frame from ``footage`` (its first frame taken at ``start``) as a JPEG
    into ``out_dir``; return each sample's file names (empty where the recording has no frame)."""
    try:
        import cv2
    except ImportError:
        raise FramesError("cutting frames needs OpenCV: pip install 'takt[edge]'") from None
    if not footage.is_file():
        raise FramesError(f"recording {footage} does not exist")
    capture: Any = cv2.VideoCapture(str(footage))
    if not capture.isOpened():
        raise FramesError(f"cannot open recording {footage}")
    out_dir.mkdir(parents=True, exist_ok=True)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    wanted: dict[int, list[int]] = {}
    for i, index in enumerate(frame_indices(samples, start, fps)):
        if index >= 0:
            wanted.setdefault(index, []).append(i)
    names: list[list[str]] = [[] for _ in samples]
    last = max(wanted, default=-1)
    position = 0
    try:
        # Read straight through: seeking is unreliable in some files (the concourse clip's header).
        while position <= last:
            ok, image = capture.read()
            if not ok or image is None:
                break
            for i in wanted.get(position, ()):
                name = frame_name(i, samples[i])
                if not cv2.imwrite(str(out_dir / name), image):
                    raise FramesError(f"cannot write {out_dir / name}")
                names[i].append(name)
            position += 1
    finally:
        capture.release()
    return names
