from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.registry import ModelRegistryError, load_manifest, resolve, sha256_file


def _setup(tmp_path: Path, content: bytes = b"weights") -> Path:
    model = tmp_path / "m.onnx"
    model.write_bytes(content)
    manifest = {
        "name": "person-yolo11n",
        "version": "2026.11.1",
        "format": "onnx",
        "path": "m.onnx",
        "sha256": sha256_file(model),
        "classes": ["person"],
    }
    (tmp_path / "person.yaml").write_text(json.dumps(manifest))  # JSON is valid YAML
    return model


def test_resolve_verifies_hash_and_names_the_version(tmp_path: Path) -> None:
    model = _setup(tmp_path)
    manifest, path = resolve(tmp_path, "person-yolo11n@2026.11.1")
    assert path == model
    assert manifest.model_version == "person-yolo11n@2026.11.1"


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    model = _setup(tmp_path)
    model.write_bytes(b"other weights")
    with pytest.raises(ModelRegistryError, match="refusing"):
        resolve(tmp_path, "person-yolo11n@2026.11.1")


def test_missing_file_is_refused_not_downloaded(tmp_path: Path) -> None:
    _setup(tmp_path).unlink()
    with pytest.raises(ModelRegistryError, match="never downloaded"):
        resolve(tmp_path, "person-yolo11n@2026.11.1")


@pytest.mark.parametrize("ref", ["person-yolo11n", "person-yolo11n@9.9", "@1"])
def test_unknown_or_malformed_reference(tmp_path: Path, ref: str) -> None:
    _setup(tmp_path)
    with pytest.raises(ModelRegistryError):
        load_manifest(tmp_path, ref)


def test_manifest_with_unknown_field_is_invalid(tmp_path: Path) -> None:
    _setup(tmp_path)
    doc = json.loads((tmp_path / "person.yaml").read_text())
    (tmp_path / "person.yaml").write_text(json.dumps({**doc, "sha265": "typo"}))
    with pytest.raises(ModelRegistryError, match="invalid manifest"):
        load_manifest(tmp_path, "person-yolo11n@2026.11.1")
