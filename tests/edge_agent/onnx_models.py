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


def write_tiny_yolox(path: Path, size: int, boxes: np.ndarray, *, objectness_from_blue: bool = False) -> None:
    """A tiny ONNX model with YOLOX-Nano's layout: input ``images`` (1, 3, S, S), output
    ``output`` (1, cells, 5 + classes) of undecoded grid rows (strides 8, 16, 32).

    ``boxes``: (k, 5 + classes) rows of cx, cy, w, h in input pixels, objectness, class scores;
    each is encoded the way YOLOX writes it (in the stride-8 cell holding its centre:
    ``x = cx / 8 - gx``, ``w = log(w / 8)``). With ``objectness_from_blue`` every objectness is
    multiplied by the mean of input channel 0 over 255: only a BGR, 0-255 input of a blue
    frame keeps it, so the test model checks the preprocessing too.
    """
    from models.onnx_info import grid_cells

    n8 = size // 8
    rows = np.zeros((grid_cells(size), boxes.shape[1]), np.float32)
    for cx, cy, w, h, *scores in boxes:
        gx, gy = int(cx // 8), int(cy // 8)
        row = gy * n8 + gx
        assert not rows[row].any(), "one box per stride-8 cell"
        rows[row] = [cx / 8 - gx, cy / 8 - gy, np.log(w / 8), np.log(h / 8), *scores]
    const = rows[None]
    keep = np.ones_like(const)
    scale = np.zeros_like(const)
    if objectness_from_blue:
        keep[..., 4], scale[..., 4] = 0.0, 1.0 / 255.0
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["images", "blue_index"], ["blue"], axis=1),
            helper.make_node("ReduceMean", ["blue"], ["blue_mean"], keepdims=0),
            helper.make_node("Mul", ["scale", "blue_mean"], ["scaled"]),
            helper.make_node("Add", ["keep", "scaled"], ["factor"]),
            helper.make_node("Mul", ["grid", "factor"], ["output"]),
        ],
        "tiny-yolox",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(const.shape))],
        [
            numpy_helper.from_array(const, "grid"),
            numpy_helper.from_array(keep, "keep"),
            numpy_helper.from_array(scale, "scale"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), "blue_index"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
