"""What an ONNX detector file says about itself: input size, output layout, class names.

One place for the rules, used by ``takt models register`` (to fill a manifest
without flags) and by the agent at start-up (to refuse a manifest that does not
describe its file).

Two output layouts are known:

- ``yolox``: ``[1, cells, 5 + C]`` with ``cells = Σ (S/s)²`` over strides 8, 16, 32;
  rows are undecoded grid offsets, objectness, then class scores. Input BGR 0–255,
  letterboxed into the top-left corner with 114.
- ``ultralytics``: ``[1, 4 + C, anchors]`` (YOLOv8/11 export), boxes decoded to centre
  x, y, w, h in input pixels, class scores without objectness. Input RGB 0–1,
  letterboxed centred with 114. Ultralytics writes ``names`` and ``imgsz`` metadata.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Layout = Literal["ultralytics", "yolox"]
ColorOrder = Literal["rgb", "bgr"]
YOLOX_STRIDES = (8, 16, 32)
# The layout decides the preprocessing its models were trained with.
LAYOUT_COLOR: dict[Layout, ColorOrder] = {"ultralytics": "rgb", "yolox": "bgr"}

COCO_CLASSES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]  # fmt: skip


class OnnxInfoError(Exception):
    """The file is not an ONNX detector this project can read, or not the one described."""


@dataclass(frozen=True)
class OnnxFacts:
    input_name: str
    input_shape: tuple[int | str, ...]
    output_shape: tuple[int | str, ...]
    input_size: int
    layout: Layout | None
    num_classes: int | None
    metadata: dict[str, str] = field(default_factory=dict)
    names: list[str] | None = None  # from metadata (ultralytics ``names``)

    @property
    def color_order(self) -> ColorOrder | None:
        return None if self.layout is None else LAYOUT_COLOR[self.layout]

    @property
    def classes(self) -> list[str] | None:
        """Metadata names, else the COCO list when the output has 80 classes."""
        if self.names is not None:
            return self.names
        if self.num_classes == len(COCO_CLASSES):
            return list(COCO_CLASSES)
        return None


def grid_cells(size: int, strides: tuple[int, ...] = YOLOX_STRIDES) -> int:
    return sum((size // s) ** 2 for s in strides)


def infer_layout(output_shape: tuple[int | str, ...], input_size: int) -> tuple[Layout, int] | None:
    """(layout, classes) from the output shape, or None when the shape cannot tell."""
    if len(output_shape) != 3 or not all(isinstance(d, int) for d in output_shape[1:]):
        return None
    a, b = int(output_shape[1]), int(output_shape[2])
    cells = grid_cells(input_size)
    if a == cells and b > 5:
        return "yolox", b - 5
    if b == cells and a > 4:
        return "ultralytics", a - 4
    return None


def _names(metadata: dict[str, str]) -> list[str] | None:
    raw = metadata.get("names")
    if raw is None:
        return None
    try:
        parsed: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(parsed, dict):
        return [str(parsed[k]) for k in sorted(parsed)]
    if isinstance(parsed, list):
        return [str(v) for v in parsed]
    return None


def inspect_onnx(path: Path) -> OnnxFacts:
    """Read shapes and metadata through ONNX Runtime (already a dependency of the yolo backend)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise OnnxInfoError("reading ONNX files needs onnxruntime: pip install 'takt[onnx]'") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise OnnxInfoError(f"cannot load ONNX model {path}: {exc}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise OnnxInfoError(f"{path}: expected one image input and an output, found {len(inputs)} inputs")
    in_shape = tuple(inputs[0].shape)
    out_shape = tuple(outputs[0].shape)
    if len(in_shape) != 4 or in_shape[1] != 3:
        raise OnnxInfoError(f"{path}: input {inputs[0].name} has shape {list(in_shape)}, not [N, 3, H, W]")
    h, w = in_shape[2], in_shape[3]
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    if not (isinstance(h, int) and isinstance(w, int)):
        imgsz = metadata.get("imgsz")
        try:
            h, w = (int(v) for v in ast.literal_eval(imgsz)) if imgsz else (0, 0)
        except (ValueError, SyntaxError, TypeError):
            h = w = 0
    if not h or h != w:
        raise OnnxInfoError(f"{path}: input {list(in_shape)} is not a fixed square size")
    guess = infer_layout(out_shape, int(h))
    return OnnxFacts(
        input_name=inputs[0].name,
        input_shape=in_shape,
        output_shape=out_shape,
        input_size=int(h),
        layout=None if guess is None else guess[0],
        num_classes=None if guess is None else guess[1],
        metadata=metadata,
        names=_names(metadata),
    )


def check_manifest(facts: OnnxFacts, *, model: str, layout: str, input_size: int, classes: int) -> None:
    """Raise a clear error when a manifest's claims do not match its file."""
    problems = []
    if facts.input_size != input_size:
        problems.append(f"input size: manifest {input_size}, file {facts.input_size}")
    if facts.layout is not None and facts.layout != layout:
        problems.append(
            f"layout: manifest {layout}, file output {list(facts.output_shape)} is {facts.layout}"
        )
    if facts.num_classes is not None and facts.num_classes != classes:
        problems.append(f"classes: manifest lists {classes}, file outputs {facts.num_classes}")
    if problems:
        raise OnnxInfoError(f"manifest for {model} does not match its file: " + "; ".join(problems))
