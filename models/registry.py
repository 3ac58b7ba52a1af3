"""The detector model registry: manifests in ``models/``, weights verified by sha256.

A manifest (JSON or YAML) names one model file and what it is::

    name: person-yolo11n
    version: 2026.11.1
    format: onnx            # onnx | pt
    task: detect
    path: person-yolo11n-2026.11.1.onnx   # relative to the manifest
    sha256: 3f5c...
    classes: [person, product]
    input_size: 640
    confidence: 0.35
    iou: 0.5

Weights are never fetched: a file that is missing or whose hash differs from
the manifest is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

_MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")


class ModelRegistryError(Exception):
    """A model reference that cannot be resolved to a verified file."""


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")]
    format: Literal["onnx", "pt"]
    task: Literal["detect", "pose"] = "detect"
    path: Path
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    classes: list[str] = Field(min_length=1)
    input_size: int = Field(default=640, ge=32)
    confidence: float = Field(default=0.35, ge=0, le=1)
    iou: float = Field(default=0.5, ge=0, le=1)
    description: str = ""
    # Where the manifest was read from; file paths are relative to it.
    manifest_dir: Path = Field(default=Path(), exclude=True)

    @property
    def model_version(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def file(self) -> Path:
        return self.path if self.path.is_absolute() else self.manifest_dir / self.path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ModelRegistryError(f"{path}: a manifest must be a mapping")
    return data


def list_manifests(models_dir: Path) -> list[ModelManifest]:
    manifests = []
    for path in sorted(models_dir.glob("*")):
        if path.suffix in _MANIFEST_SUFFIXES:
            try:
                manifests.append(ModelManifest.model_validate({**_read(path), "manifest_dir": path.parent}))
            except (ValidationError, ValueError) as exc:
                raise ModelRegistryError(f"{path}: invalid manifest: {exc}") from None
    return manifests


def load_manifest(models_dir: Path, ref: str) -> ModelManifest:
    """The manifest for ``name@version``."""
    name, sep, version = ref.partition("@")
    if not sep or not name or not version:
        raise ModelRegistryError(f"model reference {ref!r} must be name@version")
    if not models_dir.is_dir():
        raise ModelRegistryError(f"models folder {models_dir} does not exist")
    found = [m for m in list_manifests(models_dir) if m.name == name and m.version == version]
    if not found:
        raise ModelRegistryError(f"no manifest for {ref} in {models_dir}")
    if len(found) > 1:
        raise ModelRegistryError(f"several manifests for {ref} in {models_dir}")
    return found[0]


def verify(manifest: ModelManifest) -> Path:
    """The model file, after checking it exists and has the manifest's sha256."""
    path = manifest.file
    if not path.is_file():
        raise ModelRegistryError(
            f"model file {path} for {manifest.model_version} is missing; models are never downloaded "
            "implicitly: copy the file there"
        )
    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise ModelRegistryError(
            f"refusing {path}: sha256 {actual} differs from the manifest's {manifest.sha256} "
            f"for {manifest.model_version}"
        )
    return path


def resolve(models_dir: Path, ref: str) -> tuple[ModelManifest, Path]:
    manifest = load_manifest(models_dir, ref)
    return manifest, verify(manifest)
