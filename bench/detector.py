"""Detector bench on the real concourse clip: what each setting finds, and what it costs.

    .venv/bin/python bench/detector.py --model ../shared/models/yolox_nano.onnx \
        --clip ../shared/footage/concourse-720p.avi [--frames 120] [--json out.json]

For each setting (score threshold × tiling) it reports people per frame, the share of frames in
which the standing group of four (a box drawn on the clip by looking at it) has at least one,
and at least three, people found, and ms per frame. Then the agent's detector path
(``OnnxYoloDetector.detect``: letterbox, inference, decode, NMS) against bare ONNX Runtime
(``session.run`` on a prepared blob) for the same model, side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.config import TilingConfig
from edge_agent.detect.base import Image
from edge_agent.detect.yolo import OnnxYoloDetector, letterbox
from models.onnx_info import inspect_onnx
from models.registry import ModelManifest, sha256_file

# The standing group of four on the concourse clip, x1, y1, x2, y2 in 1280x720 pixels.
GROUP = (215.0, 320.0, 355.0, 455.0)


def frames(clip: Path, limit: int) -> list[Image]:
    cap = cv2.VideoCapture(str(clip))
    out: list[Image] = []
    while len(out) < limit:
        ok, img = cap.read()  # sequential reads: the clip's header overstates its length
        if not ok:
            break
        out.append(np.asarray(img, dtype=np.uint8))
    cap.release()
    return out


def manifest_for(model: Path) -> ModelManifest:
    facts = inspect_onnx(model)
    assert facts.layout is not None and facts.classes is not None, "not a layout this bench knows"
    return ModelManifest(
        name="bench",
        version="0",
        format="onnx",
        path=model.resolve(),
        sha256=sha256_file(model),
        classes=facts.classes,
        input_size=facts.input_size,
        layout=facts.layout,
        iou=0.45,
    )


def in_group(box: tuple[float, float, float, float]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return GROUP[0] <= cx <= GROUP[2] and GROUP[1] <= cy <= GROUP[3]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("../shared/models/yolox_nano.onnx"))
    ap.add_argument("--clip", type=Path, default=Path("../shared/footage/concourse-720p.avi"))
    ap.add_argument("--frames", type=int, default=120, help="Frames of the clip to use (it has 341).")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    clip = frames(args.clip, args.frames)
    manifest = manifest_for(args.model)
    wanted = frozenset({"person"})
    rows = []
    for conf in (0.4, 0.3, 0.25):
        for grid in (1, 2):
            det = OnnxYoloDetector(manifest, args.model, wanted, conf, TilingConfig(grid=grid))
            people, group_any, group_three, ms = [], 0, 0, []
            for img in clip:
                t = time.perf_counter()
                found = det.detect(img, 0.0)
                ms.append((time.perf_counter() - t) * 1000)
                people.append(len(found))
                g = sum(in_group(d.box) for d in found)
                group_any += g >= 1
                group_three += g >= 3
            rows.append(
                {
                    "confidence": conf,
                    "tiling": f"{grid}x{grid}" if grid > 1 else "off",
                    "people_per_frame_min": min(people),
                    "people_per_frame_mean": round(statistics.fmean(people), 1),
                    "people_per_frame_max": max(people),
                    "group_found_share": round(group_any / len(clip), 3),
                    "group_3plus_share": round(group_three / len(clip), 3),
                    "ms_per_frame_median": round(statistics.median(ms), 1),
                }
            )
            det.close()
            print(json.dumps(rows[-1]), flush=True)

    # Agent path vs bare ONNX Runtime, interleaved frame by frame so noise hits both alike.
    import onnxruntime as ort

    det = OnnxYoloDetector(manifest, args.model, wanted, 0.4)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    bare = ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])
    name = bare.get_inputs()[0].name
    blob, _, _ = letterbox(clip[0], manifest.input_size, corner=True, bgr=True, unit_scale=False)
    agent_ms, bare_ms = [], []
    for _ in range(2):
        for img in clip:
            t = time.perf_counter()
            bare.run(None, {name: blob})
            bare_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            det.detect(img, 0.0)
            agent_ms.append((time.perf_counter() - t) * 1000)
    side = {
        "bare_onnxruntime_ms_median": round(statistics.median(bare_ms), 1),
        "agent_detector_ms_median": round(statistics.median(agent_ms), 1),
        "ratio": round(statistics.median(agent_ms) / statistics.median(bare_ms), 2),
    }
    print(json.dumps(side))
    if args.json is not None:
        args.json.write_text(json.dumps({"settings": rows, "agent_vs_bare": side}, indent=2))


if __name__ == "__main__":
    main()
