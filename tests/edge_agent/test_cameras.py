"""Many cameras per gateway: the cameras list, one run loop, one buffer, per-camera status, batching."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.agent import Agent
from edge_agent.config import ConfigError, parse_config
from edge_agent.runner import FrameSlots
from edge_agent.sources import Frame, Outage
from edge_agent.synthetic import demo_config, render
from takt.contract import Event, GatewayStatus
from tests.edge_agent.onnx_models import register
from tests.edge_agent.test_agent import run_offline

Outcome = tuple[object, ...]


def _outcome(events: list[Event]) -> list[Outcome]:
    return sorted(
        (e.timestamp, e.station_id, e.event_type.value, e.duration_s, e.count, e.worker_id) for e in events
    )


def _camera(doc: dict[str, Any], camera_id: str, prefix: str) -> dict[str, Any]:
    """The one-camera ``doc`` as an entry of ``cameras:``, its stations renamed with ``prefix``."""
    entry = {**doc["camera"], "id": camera_id}
    entry["stations"] = [{**s, "id": prefix + s["id"]} for s in doc["stations"]]
    entry["count_lines"] = [
        {**c, "id": prefix + c["id"], "station_id": prefix + c["station_id"]} for c in doc["count_lines"]
    ]
    return entry


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = []
    for seed in (7, 3):
        root = tmp_path_factory.mktemp(f"clip{seed}")
        video, truth = render(root, seed=seed, duration_s=40)
        out.append(demo_config(video, truth, buffer_path=root / "b.sqlite", mqtt_url="mqtt://x@h"))
    return out


def _gateway(clips: list[dict[str, Any]], buffer: Path) -> dict[str, Any]:
    a, b = clips
    doc = {k: v for k, v in a.items() if k not in ("camera", "stations", "count_lines")}
    doc["cameras"] = [_camera(a, "cam-a", "a-"), _camera(b, "cam-b", "b-")]
    doc["roster"] = [{**r, "station_id": "a-" + r["station_id"]} for r in a["roster"]]
    doc["buffer"] = {"path": str(buffer)}
    return doc


def test_one_agent_serves_several_cameras_like_separate_agents(
    two_clips: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = parse_config(_gateway(two_clips, tmp_path / "gw.sqlite"))
    agent = Agent(config)
    assert [p.camera.id for p in agent.pipelines] == ["cam-a", "cam-b"]
    # Motion detectors learn a background: one per camera, never shared.
    assert agent.pipelines[0].detector is not agent.pipelines[1].detector
    agent.run(threading.Event(), publish=False)
    stored = [Event.model_validate_json(p) for _, p in agent.buffer.read_after(0, 1_000_000)]
    # One buffer, one per-gateway sequence for both cameras.
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    for pipeline, prefix, clip in zip(agent.pipelines, ("a-", "b-"), two_clips, strict=True):
        mine = [e for e in stored if e.camera_id == pipeline.camera.id]
        assert mine and all(e.station_id.startswith(prefix) for e in mine)
        assert {e.config_version for e in mine} == {pipeline.config_version}
        # The same events as a one-camera agent on that clip (station ids aside).
        doc = copy.deepcopy(clip)
        doc["buffer"] = {"path": str(tmp_path / f"{prefix}alone.sqlite")}
        alone = run_offline(Agent(parse_config(doc)))
        renamed = [e.model_copy(update={"station_id": prefix + e.station_id}) for e in alone]
        if prefix == "b-":  # the gateway's roster names camera a's stations only
            renamed = [e.model_copy(update={"worker_id": "unknown"}) for e in renamed]
        assert _outcome(mine) == _outcome(renamed)
    assert agent.pipelines[0].config_version != agent.pipelines[1].config_version
    # The status reports each camera, in the contract's form.
    status = GatewayStatus(gateway_id="gw-demo", state="online", **agent.status_fields())
    assert status.cameras is not None
    assert [(c.camera_id, c.frames, c.camera_state) for c in status.cameras] == [
        ("cam-a", agent.pipelines[0].frames, "ended"),
        ("cam-b", agent.pipelines[1].frames, "ended"),
    ]
    assert all(c.frames and c.last_frame_at is not None for c in status.cameras)
    assert status.frames == agent.pipelines[0].frames + agent.pipelines[1].frames


def test_the_one_camera_form_still_reports_as_before(two_clips: list[dict[str, Any]], tmp_path: Path) -> None:
    doc = {**two_clips[0], "buffer": {"path": str(tmp_path / "b.sqlite")}}
    agent = Agent(parse_config(doc))
    fields = agent.status_fields()
    assert fields["camera_id"] == "cam-demo" and fields["config_version"] == agent.pipeline.config_version
    assert [c["camera_id"] for c in fields["cameras"]] == ["cam-demo"]
    assert "health" not in fields["cameras"][0]  # a file: health checks are off unless enabled


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["cameras"][1]["stations"][0].update(id="a-st-1"), "unique (across all cameras)"),
        (lambda d: d["cameras"][1].update(id="cam-a"), "camera ids must be unique"),
        (lambda d: d["cameras"][1]["count_lines"][0].update(station_id="a-st-1"), "unknown station"),
        (lambda d: d.update(stations=d["cameras"][0]["stations"]), "go under each camera"),
        (lambda d: d["cameras"][0].update(stations=[]), "cameras.0.stations"),
    ],
)
def test_camera_lists_are_checked(
    two_clips: list[dict[str, Any]], tmp_path: Path, change: Any, message: str
) -> None:
    doc = _gateway(two_clips, tmp_path / "b.sqlite")
    change(doc)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(doc)


def test_frame_slots_drop_the_oldest_live_frame_but_never_an_outage() -> None:
    slots = FrameSlots(2, capacity=2)
    stop = threading.Event()
    image = np.zeros((4, 4, 3), np.uint8)
    for i in range(5):
        slots.put(0, Frame(image, float(i), i), wait=False, stop=stop)
    slots.put(0, Outage(4.0, "dropped"), wait=False, stop=stop)
    slots.put(1, Frame(image, 9.0, 0), wait=False, stop=stop)
    assert slots.dropped == [3, 0]
    first = slots.take(0.1)
    assert [(i, getattr(item, "index", None)) for i, item in first] == [(0, 3), (1, 0)]
    rest = [item for _, item in slots.take(0.1) + slots.take(0.1)]
    assert [type(item).__name__ for item in rest] == ["Frame", "Outage"]
    assert slots.take(0.01) == []


def _batch_yolo(path: Path, size: int, candidates: np.ndarray) -> None:
    """A tiny model like tests/edge_agent/onnx_models.py's, with a free batch dimension."""
    const = candidates.T[None].astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Reshape", ["mean", "shape"], ["per_image"]),
            helper.make_node("Mul", ["per_image", "zero"], ["nothing"]),
            helper.make_node("Add", ["boxes", "nothing"], ["output0"]),
        ],
        "tiny-yolo-batch",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", *const.shape[1:]])],
        [
            numpy_helper.from_array(const, "boxes"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def test_a_free_batch_dimension_runs_cameras_in_one_call(tmp_path: Path) -> None:
    from edge_agent.agent import build_detector_for
    from edge_agent.config import DetectorConfig
    from edge_agent.detect.yolo import OnnxYoloDetector

    models = tmp_path / "models"
    models.mkdir()
    rows = np.array([[160, 120, 40, 80, 0.9, 0.0], [60, 60, 20, 20, 0.0, 0.8]], np.float32)
    _batch_yolo(models / "b.onnx", 320, rows)
    register(models, "tiny-batch", "1", models / "b.onnx", ["person", "product"], 320)
    detector = build_detector_for(DetectorConfig(backend="yolo", model="tiny-batch@1", models_dir=models))
    assert isinstance(detector, OnnxYoloDetector) and detector.batch_capable and detector.shareable
    frames = [np.full((240, 320, 3), v, np.uint8) for v in (0, 90, 200)] + [np.zeros((480, 640, 3), np.uint8)]
    batched = detector.detect_batch(frames, [0.0, 0.0, 0.0, 0.0])
    assert detector.session_runs == 1
    one_by_one = [detector.detect(f, 0.0) for f in frames]
    assert batched == one_by_one and all(len(d) == 2 for d in batched)
    # A frame twice the size: boxes scale with it.
    assert batched[3][0].box == pytest.approx(tuple(2 * v for v in batched[0][0].box))


def test_edge_check_grabs_a_frame_from_every_camera(two_clips: list[dict[str, Any]], tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from takt.cli import main

    doc = _gateway(two_clips, tmp_path / "b.sqlite")
    doc["cameras"][1]["source"] = str(tmp_path / "missing.avi")
    doc["mqtt"] = {"url": "mqtt://gw:pw@127.0.0.1:1", "connect_timeout_s": 0.5}
    (tmp_path / "edge.yaml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(main, ["edge", "check", "--config", str(tmp_path / "edge.yaml")])
    assert result.exit_code == 1
    rows = {
        line[:14].strip(): line for line in result.output.splitlines() if "PASS" in line or "FAIL" in line
    }
    assert "PASS" in rows["camera cam-a"]
    assert "FAIL" in rows["camera cam-b"] and "missing.avi does not exist" in rows["camera cam-b"]
