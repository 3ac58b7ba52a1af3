"""The detector model registry: manifests in ``models/``, weights verified by sha256.

A manifest (JSON or YAML) names one model file and what it is::

    name: person-yolo11n
    version: 2026.11.1
    format: onnx            # onnx | pt | motion | replay
    framework: ultralytics 8.3 / onnx opset 17
    task: detect
    path: person-yolo11n-2026.11.1.onnx   # relative to the manifest
    sha256: 3f5c...
    classes: [person, product]
    input_size: 640
    layout: ultralytics     # ultralytics [1, 4+C, N] | yolox [1, cells, 5+C] (undecoded grids)
    color_order: rgb        # rgb | bgr; default: the layout's own
    confidence: 0.35
    iou: 0.5
    training_data: "line 1-4 footage 2026-10, 12k frames, labelled by ..."
    created: 2026-11-20

``motion`` and ``replay`` "models" carry no weights: their file is a YAML of
motion-backend parameters or a JSONL of recorded detections. Registering them
like weights gives them a version, a hash and a place in every comparison.

Weights are never fetched: a file that is missing or whose hash differs from
the manifest is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.onnx_info import LAYOUT_COLOR, ColorOrder, Layout

logger = logging.getLogger(__name__)

_MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")
ModelFormat = Literal["onnx", "pt", "motion", "replay"]


class ModelRegistryError(Exception):
    """A model reference that cannot be resolved to a verified file."""


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")]
    format: ModelFormat
    framework: str = ""
    task: Literal["detect", "pose"] = "detect"
    path: Path
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    classes: list[str] = Field(min_length=1)
    input_size: int = Field(default=640, ge=32)
    # ONNX output layout and input colour order (models/onnx_info.py); colour None: the layout's own.
    layout: Layout = "ultralytics"
    color_order: ColorOrder | None = None
    confidence: float = Field(default=0.35, ge=0, le=1)
    iou: float = Field(default=0.5, ge=0, le=1)
    description: str = ""
    training_data: str = ""
    created: date | None = None
    # Where the manifest was read from; file paths are relative to it.
    manifest_dir: Path = Field(default=Path(), exclude=True)

    @property
    def model_version(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def colors(self) -> ColorOrder:
        return self.color_order or LAYOUT_COLOR[self.layout]

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


def manifest_path(models_dir: Path, name: str, version: str) -> Path:
    return models_dir / f"{name}-{version}.yaml"


def register(
    models_dir: Path,
    source: Path,
    *,
    name: str,
    version: str,
    format: ModelFormat,
    copy: bool = True,
    **fields: Any,
) -> tuple[ModelManifest, bool]:
    """Write the manifest for ``source`` as ``name@version``; returns it and whether it is new.

    Registering the same file again is a no-op; a different file under an
    existing name@version is refused, because events already stamped with that
    version would then describe two different models.
    """
    if not source.is_file():
        raise ModelRegistryError(f"{source} is not a file")
    digest = sha256_file(source)
    models_dir.mkdir(parents=True, exist_ok=True)
    existing = [m for m in list_manifests(models_dir) if m.name == name and m.version == version]
    if existing:
        if existing[0].sha256 != digest:
            raise ModelRegistryError(
                f"{name}@{version} is already registered with sha256 {existing[0].sha256}; "
                f"{source} has {digest}: give the new file a new version"
            )
        return existing[0], False
    if copy:
        target = models_dir / f"{name}-{version}{source.suffix if format in ('onnx', 'pt') else '.' + format}"
        if target.resolve() != source.resolve():
            if target.exists() and sha256_file(target) != digest:
                raise ModelRegistryError(f"{target} exists with other content; not overwriting it")
            shutil.copyfile(source, target)
        path = Path(target.name)
    else:
        path = source.resolve()
    try:
        manifest = ModelManifest.model_validate(
            {
                "name": name,
                "version": version,
                "format": format,
                "path": path,
                "sha256": digest,
                "created": date.today(),
                **{k: v for k, v in fields.items() if v is not None},
                "manifest_dir": models_dir,
            }
        )
    except ValidationError as exc:
        raise ModelRegistryError(f"invalid manifest for {name}@{version}: {exc}") from None
    target_manifest = manifest_path(models_dir, name, version)
    if target_manifest.exists():
        raise ModelRegistryError(f"{target_manifest} exists but does not describe {name}@{version}")
    doc = manifest.model_dump(mode="json", exclude_defaults=False)
    target_manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    logger.info("registered %s as %s", source, manifest.model_version)
    return manifest, True


def verify_all(models_dir: Path) -> list[tuple[ModelManifest, str | None]]:
    """Every manifest with ``None`` when its file is present and intact, else the problem."""
    results: list[tuple[ModelManifest, str | None]] = []
    for manifest in list_manifests(models_dir):
        try:
            verify(manifest)
        except ModelRegistryError as exc:
            results.append((manifest, str(exc)))
        else:
            results.append((manifest, None))
    return results
