"""``takt models``: register, list and verify detector models; export samples for labelling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import get_args

import click

from models.registry import ModelFormat, ModelRegistryError, list_manifests, register, verify_all

MODELS_DIR = click.option(
    "--models-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
    envvar="TAKT_MODELS_DIR",
    help="The registry folder (manifests, and weights next to them). Env: TAKT_MODELS_DIR.",
)


@click.group()
def models() -> None:
    """The detector model registry and the ML team's tools."""


@models.command("register")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True)
@click.option("--version", "version", required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(get_args(ModelFormat)),
    default=None,
    help="Default: from the file's suffix (.onnx, .pt).",
)
@click.option("--framework", default=None, help="e.g. 'ultralytics 8.3, onnx opset 17'.")
@click.option("--task", type=click.Choice(["detect", "pose"]), default=None)
@click.option("--classes", default=None, help="Comma-separated, in the model's output order.")
@click.option("--input-size", type=int, default=None)
@click.option("--confidence", type=float, default=None, help="Detection threshold.")
@click.option("--iou", type=float, default=None, help="NMS IoU threshold.")
@click.option("--training-data", default=None, help="What it was trained on.")
@click.option("--description", default=None)
@click.option("--no-copy", is_flag=True, help="Reference FILE where it is instead of copying it in.")
@MODELS_DIR
def register_cmd(
    *,
    file: Path,
    name: str,
    version: str,
    fmt: str | None,
    framework: str | None,
    task: str | None,
    classes: str | None,
    input_size: int | None,
    confidence: float | None,
    iou: float | None,
    training_data: str | None,
    description: str | None,
    no_copy: bool,
    models_dir: Path,
) -> None:
    """Hash FILE and write its manifest as NAME@VERSION into the registry."""
    if fmt is None:
        fmt = file.suffix.lstrip(".")
        if fmt not in ("onnx", "pt"):
            click.echo(f"cannot tell the format of {file.name}: pass --format", err=True)
            sys.exit(2)
    fields = {
        "framework": framework,
        "task": task,
        "classes": None if classes is None else [c.strip() for c in classes.split(",") if c.strip()],
        "input_size": input_size,
        "confidence": confidence,
        "iou": iou,
        "training_data": training_data,
        "description": description,
    }
    if fields["classes"] is None and fmt in ("motion", "replay"):
        fields["classes"] = ["person", "product"]
    try:
        manifest, new = register(
            models_dir,
            file,
            name=name,
            version=version,
            format=fmt,  # type: ignore[arg-type]  # checked by click.Choice / above
            copy=not no_copy,
            **fields,
        )
    except ModelRegistryError as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    verb = "registered" if new else "already registered (same file)"
    click.echo(f"{verb}: {manifest.model_version} sha256 {manifest.sha256} -> {manifest.file}")


@models.command("list")
@MODELS_DIR
def list_cmd(models_dir: Path) -> None:
    """One line per manifest: model_version, format, task, classes, created, file."""
    try:
        manifests = list_manifests(models_dir) if models_dir.is_dir() else []
    except ModelRegistryError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for m in manifests:
        created = m.created.isoformat() if m.created else "-"
        click.echo(
            f"{m.model_version}\t{m.format}\t{m.task}\t{','.join(m.classes)}\t"
            f"conf={m.confidence}\t{created}\t{m.path}"
        )


@models.command("verify")
@MODELS_DIR
def verify_cmd(models_dir: Path) -> None:
    """Check every manifest's file exists and matches its sha256; exit 1 otherwise."""
    try:
        results = verify_all(models_dir) if models_dir.is_dir() else []
    except ModelRegistryError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    bad = 0
    for manifest, problem in results:
        if problem is None:
            click.echo(f"OK    {manifest.model_version}")
        else:
            bad += 1
            click.echo(f"FAIL  {manifest.model_version}: {problem}")
    click.echo(f"{len(results) - bad} verified, {bad} failed")
    if bad:
        sys.exit(1)
