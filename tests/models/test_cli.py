from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from models.registry import load_manifest, resolve
from takt.cli import main


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["models", *args])
    return result.exit_code, result.output


def test_register_list_verify(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    weights = tmp_path / "best.onnx"
    weights.write_bytes(b"onnx bytes v1")
    code, out = _invoke(
        "register", str(weights), "--name", "person-yolo11n", "--version", "2026.11.1",
        "--classes", "person,product", "--confidence", "0.4", "--training-data", "line 1, Oct 2026",
        "--models-dir", str(reg),
    )  # fmt: skip
    assert code == 0, out
    manifest, path = resolve(reg, "person-yolo11n@2026.11.1")
    assert path.parent == reg and path.read_bytes() == b"onnx bytes v1"  # copied in
    assert manifest.format == "onnx" and manifest.classes == ["person", "product"]
    assert manifest.confidence == 0.4 and manifest.training_data == "line 1, Oct 2026"
    assert manifest.created is not None
    # The manifest on disk is plain YAML a person can read and review.
    doc = yaml.safe_load((reg / "person-yolo11n-2026.11.1.yaml").read_text())
    assert doc["sha256"] == manifest.sha256 and "manifest_dir" not in doc

    code, out = _invoke("list", "--models-dir", str(reg))
    assert code == 0 and out.startswith("person-yolo11n@2026.11.1\tonnx\tdetect\tperson,product")
    code, out = _invoke("verify", "--models-dir", str(reg))
    assert code == 0 and "OK    person-yolo11n@2026.11.1" in out

    # Tampered weights make verify fail with a non-zero exit.
    path.write_bytes(b"tampered")
    code, out = _invoke("verify", "--models-dir", str(reg))
    assert code == 1 and "FAIL  person-yolo11n@2026.11.1" in out and "0 verified, 1 failed" in out


def test_register_refuses_a_different_file_under_the_same_version(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
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
