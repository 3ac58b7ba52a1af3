"""``takt models``: register, list and verify detector models; export samples for labelling."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import click

from models.onnx_info import LAYOUT_COLOR, OnnxInfoError, inspect_onnx
from models.registry import ModelFormat, ModelRegistryError, list_manifests, register, verify_all

_TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"]
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
@click.option("--input-size", type=int, default=None, help="Default (ONNX): from the file's input shape.")
@click.option(
    "--layout",
    type=click.Choice(["ultralytics", "yolox"]),
    default=None,
    help="ONNX output layout. Default: from the file's output shape.",
)
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
    layout: str | None,
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
    if fmt == "onnx":
        try:
            fields.update(_onnx_fields(file, fields, layout))
        except OnnxInfoError as exc:
            click.echo(f"refused: {exc}", err=True)
            sys.exit(1)
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


YOLOX_CONFIDENCE = 0.3


def _onnx_fields(file: Path, given: Mapping[str, object], layout: str | None) -> dict[str, Any]:
    """What the ONNX file tells: input size, layout, colour order, classes (metadata or COCO's 80)."""
    facts = inspect_onnx(file)
    chosen = layout or facts.layout
    if chosen is None:
        raise OnnxInfoError(
            f"cannot tell the layout of {file.name} from its output {list(facts.output_shape)}: pass --layout"
        )
    out: dict[str, Any] = {"layout": chosen, "color_order": LAYOUT_COLOR[chosen]}  # type: ignore[index]
    if given["input_size"] is None:
        out["input_size"] = facts.input_size
    if given["confidence"] is None and chosen == "yolox":
        # Measured on the concourse clip (docs/benchmarks.md): 0.3 finds a standing group in 97 %
        # of frames, against 62 % at 0.4.
        out["confidence"] = YOLOX_CONFIDENCE
    if given["classes"] is None:
        if facts.classes is None:
            raise OnnxInfoError(
                f"{file.name} outputs {facts.num_classes} classes and has no names metadata: pass --classes"
            )
        out["classes"] = facts.classes
    if given["task"] is None and facts.metadata.get("task") in ("detect", "pose"):
        out["task"] = facts.metadata["task"]
    return out


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


def _database_url(value: str | None) -> str:
    if value:
        return value
    from takt.settings import CommonSettings

    return CommonSettings().database_url


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


DATABASE = click.option(
    "--database-url", default=None, help="Default: TAKT_DATABASE_URL (see `takt config show`)."
)


@models.command("export-samples")
@click.option("--from", "from_", type=click.DateTime(_TIME_FORMATS), default=None, help="Default: 1 day ago.")
@click.option(
    "--to", type=click.DateTime(_TIME_FORMATS), default=None, help="Default: now. Naive times are UTC."
)
@click.option("--site", "site_id", default=None)
@click.option("--station", "station_id", default=None)
@click.option("--camera", "camera_id", default=None)
@click.option("--below", "low_confidence_below", type=float, default=0.5, show_default=True,
              help="Low-confidence threshold; negative: no low-confidence samples.")  # fmt: skip
@click.option("--min-overlap", "min_overlap_s", type=float, default=1.0, show_default=True,
              help="Seconds two models must disagree to make a sample.")  # fmt: skip
@click.option("--limit", type=int, default=10_000, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: stdout.")
@click.option(
    "--with-frames",
    "frames_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write each sample's frame (JPEG, people as they are) into this folder, cut from "
    "--footage; samples then name their files. Without it samples carry no pictures.",
)
@click.option(
    "--footage",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --with-frames: a recording of the camera the samples are from.",
)
@click.option(
    "--footage-start",
    type=click.DateTime(_TIME_FORMATS),
    default=None,
    help="With --with-frames: when the recording's first frame was taken (naive: UTC).",
)
@DATABASE
def export_samples(
    *,
    from_: datetime | None,
    to: datetime | None,
    site_id: str | None,
    station_id: str | None,
    camera_id: str | None,
    low_confidence_below: float,
    min_overlap_s: float,
    limit: int,
    fmt: str,
    out: Path | None,
    frames_dir: Path | None,
    footage: Path | None,
    footage_start: datetime | None,
    database_url: str | None,
) -> None:
    """Low-confidence and production/shadow disagreement samples for labelling (JSONL or CSV).

    Samples are events only: no pictures of people, unless --with-frames asks for them (cut
    from a recording of the camera given by --footage and --footage-start).
    """
    import psycopg

    from models.quality import sample_events
    from models.samples import select, to_csv, to_jsonl

    if (frames_dir is None) != (footage is None) or (footage is None) != (footage_start is None):
        click.echo("--with-frames, --footage and --footage-start go together", err=True)
        sys.exit(2)
    hi = _utc(to) or datetime.now(UTC)
    lo = _utc(from_) or hi - timedelta(days=1)
    with psycopg.connect(_database_url(database_url), options="-c TimeZone=UTC") as conn:
        events = sample_events(conn, lo, hi, site_id=site_id, station_id=station_id, camera_id=camera_id)
    found = select(
        events,
        low_confidence_below=None if low_confidence_below < 0 else low_confidence_below,
        min_overlap_s=min_overlap_s,
        limit=limit,
    )
    frames = None
    if frames_dir is not None and footage is not None and footage_start is not None:
        from models.sample_frames import FramesError, cut_frames

        try:
            frames = cut_frames(found, footage, _utc(footage_start) or hi, frames_dir)
        except FramesError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        click.echo(f"{sum(map(len, frames))} frames -> {frames_dir}", err=True)
    data = to_csv(found, frames).encode() if fmt == "csv" else to_jsonl(found, frames)
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        out.write_bytes(data)
    click.echo(f"{len(found)} samples from {len(events)} events", err=True)


@models.command("drift-check")
@click.option("--now", type=click.DateTime(_TIME_FORMATS), default=None, help="End of the recent window.")
@click.option("--fail-on-flag", is_flag=True, help="Exit 1 when anything is flagged (cron, CI).")
@DATABASE
def drift_check(now: datetime | None, fail_on_flag: bool, database_url: str | None) -> None:
    """Run the drift check once (windows and thresholds: TAKT_DRIFT_*) and record its flags."""
    import psycopg

    from models.quality import run_drift_check, schedule_from
    from models.settings import DriftSettings

    settings = DriftSettings()
    url = database_url or settings.database_url
    with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:
        results = run_drift_check(conn, _utc(now) or datetime.now(UTC), schedule_from(settings))
    flags = 0
    for result in results:
        s, report = result.subject, result.report
        if not report.enough_data:
            click.echo(f"{s.kind} {s.id}: not enough events for a verdict")
        for flag in report.flags:
            flags += 1
            click.echo(f"FLAG  {s.kind} {s.id}: {flag.metric} {flag.value:.3f} (threshold {flag.threshold})")
    click.echo(f"{len(results)} subjects checked, {flags} flags")
    if fail_on_flag and flags:
        sys.exit(1)
