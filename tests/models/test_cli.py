from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from models.registry import load_manifest, resolve
from takt.cli import main


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["models", *args])
    return result.exit_code, result.output


def test_register_list_verify(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    weights = tmp_path / "best.pt"  # .pt: not inspected, so any bytes do
    weights.write_bytes(b"pt bytes v1")
    code, out = _invoke(
        "register", str(weights), "--name", "person-yolo11n", "--version", "2026.11.1",
        "--classes", "person,product", "--confidence", "0.4", "--training-data", "line 1, Oct 2026",
        "--models-dir", str(reg),
    )  # fmt: skip
    assert code == 0, out
    manifest, path = resolve(reg, "person-yolo11n@2026.11.1")
    assert path.parent == reg and path.read_bytes() == b"pt bytes v1"  # copied in
    assert manifest.format == "pt" and manifest.classes == ["person", "product"]
    assert manifest.confidence == 0.4 and manifest.training_data == "line 1, Oct 2026"
    assert manifest.created is not None
    # The manifest on disk is plain YAML a person can read and review.
    doc = yaml.safe_load((reg / "person-yolo11n-2026.11.1.yaml").read_text())
    assert doc["sha256"] == manifest.sha256 and "manifest_dir" not in doc

    code, out = _invoke("list", "--models-dir", str(reg))
    assert code == 0 and out.startswith("person-yolo11n@2026.11.1\tpt\tdetect\tperson,product")
    code, out = _invoke("verify", "--models-dir", str(reg))
    assert code == 0 and "OK    person-yolo11n@2026.11.1" in out

    # Tampered weights make verify fail with a non-zero exit.
    path.write_bytes(b"tampered")
    code, out = _invoke("verify", "--models-dir", str(reg))
    assert code == 1 and "FAIL  person-yolo11n@2026.11.1" in out and "0 verified, 1 failed" in out


def test_register_refuses_a_different_file_under_the_same_version(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    args = ("--name", "m", "--version", "1", "--classes", "person", "--models-dir", str(reg))
    assert _invoke("register", str(a), *args)[0] == 0
    code, out = _invoke("register", str(a), *args)
    assert code == 0 and "already registered" in out
    code, out = _invoke("register", str(b), *args)
    assert code == 1 and "already registered with sha256" in out
    assert resolve(reg, "m@1")[1].read_bytes() == b"first"
    # A new version of the new file is fine.
    assert _invoke("register", str(b), "--name", "m", "--version", "2", "--classes", "person",
                   "--models-dir", str(reg))[0] == 0  # fmt: skip
    assert load_manifest(reg, "m@2").sha256 != load_manifest(reg, "m@1").sha256


def test_register_needs_a_format_it_can_tell(tmp_path: Path) -> None:
    params = tmp_path / "motion.yaml"
    params.write_text("var_threshold: 40\n")
    code, out = _invoke(
        "register", str(params), "--name", "m", "--version", "1", "--models-dir", str(tmp_path / "r")
    )
    assert code == 2 and "--format" in out
    code, out = _invoke(
        "register", str(params), "--name", "person-motion", "--version", "2", "--format", "motion",
        "--models-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 0, out
    manifest, path = resolve(tmp_path / "r", "person-motion@2")
    assert path.name == "person-motion-2.motion" and manifest.format == "motion"


def test_verify_on_an_empty_registry_passes(tmp_path: Path) -> None:
    code, out = _invoke("verify", "--models-dir", str(tmp_path))
    assert code == 0 and "0 verified, 0 failed" in out


def test_register_reads_layout_size_and_coco_classes_from_a_yolox_file(tmp_path: Path) -> None:
    from tests.conftest import SHARED_DIR

    yolox = SHARED_DIR / "models" / "yolox_nano.onnx"
    if not yolox.exists():
        pytest.skip(f"YOLOX-Nano weights not present at {yolox}")
    reg = tmp_path / "r"
    code, out = _invoke(
        "register", str(yolox), "--name", "yolox-nano", "--version", "1", "--models-dir", str(reg)
    )
    assert code == 0, out
    m = load_manifest(reg, "yolox-nano@1")
    assert (m.layout, m.input_size, m.colors, len(m.classes), m.classes[0]) == (
        "yolox",
        416,
        "bgr",
        80,
        "person",
    )


def test_register_reads_an_ultralytics_layout_file(tmp_path: Path) -> None:
    from tests.edge_agent.onnx_models import write_tiny_yolo

    reg = tmp_path / "r"
    coco = tmp_path / "coco.onnx"  # 80 classes, no metadata: the COCO list
    write_tiny_yolo(coco, 320, np.zeros((1, 84), np.float32), full_grid=True)
    assert (
        _invoke("register", str(coco), "--name", "coco", "--version", "1", "--models-dir", str(reg))[0] == 0
    )
    m = load_manifest(reg, "coco@1")
    assert (m.layout, m.input_size, m.colors, len(m.classes)) == ("ultralytics", 320, "rgb", 80)
    named = tmp_path / "named.onnx"  # ultralytics writes names metadata
    write_tiny_yolo(
        named,
        320,
        np.zeros((1, 6), np.float32),
        full_grid=True,
        metadata={"names": "{0: 'person', 1: 'box'}"},
    )
    assert (
        _invoke("register", str(named), "--name", "named", "--version", "1", "--models-dir", str(reg))[0] == 0
    )
    assert load_manifest(reg, "named@1").classes == ["person", "box"]
    bare = tmp_path / "bare.onnx"  # 2 classes, no names: it must ask
    write_tiny_yolo(bare, 320, np.zeros((1, 6), np.float32), full_grid=True)
    code, out = _invoke("register", str(bare), "--name", "bare", "--version", "1", "--models-dir", str(reg))
    assert code == 1 and "pass --classes" in out
