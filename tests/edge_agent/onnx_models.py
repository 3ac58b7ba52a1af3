"""Test helper: tiny ONNX models with the output layout of an ultralytics YOLO export.

Pretrained weights cannot be downloaded here, so the test model's output is a
constant set of candidate boxes (plus 0 x the image mean, so the graph really
consumes the input). ONNX Runtime loads and runs it exactly like an exported
yolo11n: input ``images`` (1, 3, S, S) float32, output ``output0``
(1, 4 + classes, anchors) with centre-x, centre-y, w, h in input pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.registry import sha256_file


def write_tiny_yolo(
    path: Path,
    size: int,
    candidates: np.ndarray,
    *,
    full_grid: bool = False,
    metadata: dict[str, str] | None = None,
) -> None:
    """``candidates``: (anchors, 4 + classes) rows of cx, cy, w, h, class scores.

    ``full_grid`` pads with empty rows to the anchor count of a real export at ``size``
    (so its output shape tells its layout); ``metadata`` as ultralytics writes it.
    """
    if full_grid:
        from models.onnx_info import grid_cells

        rows = np.zeros((grid_cells(size), candidates.shape[1]), np.float32)
        rows[: len(candidates)] = candidates
        candidates = rows
    const = candidates.T[None].astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["boxes", "nothing"], ["output0"]),
        ],
        "tiny-yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(const.shape))],
        [
            numpy_helper.from_array(const, "boxes"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def register(
    models_dir: Path, name: str, version: str, model_file: Path, classes: list[str], size: int
) -> str:
    manifest = {
        "name": name,
        "version": version,
        "format": "onnx",
        "task": "detect",
        "path": model_file.name,
        "sha256": sha256_file(model_file),
        "classes": classes,
        "input_size": size,
        "confidence": 0.3,
        "iou": 0.5,
    }
    (models_dir / f"{name}@{version}.json").write_text(json.dumps(manifest))
    return f"{name}@{version}"
