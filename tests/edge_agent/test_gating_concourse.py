"""Motion gating on the real clip with the real detector: the same states as without, fewer runs.

Reads the YOLOX-Nano weights and the concourse clip from ../shared; skipped where either is absent.
Zones and the hand-written truth: edge_agent/concourse.py, tests/edge_agent/concourse.truth.json,
plus one zone drawn here that two men walk out of.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from edge_agent.concourse import concourse_config
from edge_agent.config import parse_config
from edge_agent.evaluation import ModelScore, parse_truth
from edge_agent.gating import MOTION, RECHECK
from edge_agent.offline import EVAL_ORIGIN, evaluate
from takt.cli import main
from takt.contract import CameraStatus, Event, EventType
from tests.edge_agent.test_concourse import MODEL, TRUTH, registry

__all__ = ["registry"]  # the fixture, shared with the ungated concourse test
pytestmark = pytest.mark.slow

# Two men stand at the top of the view and walk up out of this square; their box centres leave
# it between frames 135 and 155 (2.7-3.1 s on the agent's timeline), nobody enters it afterwards
# (checked by eye on frames 125-340, every 5th).
LEAVING = [(525, 60), (615, 60), (615, 150), (525, 150)]
LEAVING_TRUTH = [
    {"state": "present", "start_s": 0.0, "end_s": 2.7},
    {"state": "absent", "start_s": 3.1, "end_s": 6.8},
]


def _doc(registry: Path, footage: Path, tmp_path: Path, gating: bool, zones: list[str]) -> dict[str, Any]:
    doc = concourse_config(
        footage,
        models_dir=registry,
        model=MODEL,
        mqtt_url="mqtt://unused@127.0.0.1:1",
        buffer_path=tmp_path / "buffer.sqlite",
    )
    stations = {s["id"]: s for s in doc["stations"]}
    leaving = {**stations["empty"], "id": "leaving", "zone": [list(p) for p in LEAVING]}
    stations["leaving"] = leaving
    doc["stations"] = [stations[z] for z in zones]
    doc["detector"]["gating"] = {"enabled": gating}
    return doc


def _truth(zones: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(TRUTH.read_text())
    doc["stations"]["leaving"] = {"segments": LEAVING_TRUTH}
    doc["stations"] = {k: v for k, v in doc["stations"].items() if k in zones}
    return doc


def _run(
    registry: Path, footage: Path, tmp_path: Path, gating: bool, zones: list[str]
) -> tuple[ModelScore, list[Event], Any]:
    config = parse_config(_doc(registry, footage, tmp_path, gating, zones))
    out = tmp_path / f"events-{gating}.jsonl"
    scores, agent = evaluate(config, parse_truth(_truth(zones)), out)
    events = [Event.model_validate_json(line) for line in out.read_bytes().splitlines()]
    return scores[0], events, agent


def _shares(model: ModelScore) -> dict[str, dict[str, float]]:
    return {sid: s.predicted_share() for sid, s in model.stations.items()}


def test_takt_edge_eval_gives_the_same_states_with_gating_as_without(
    registry: Path, shared_footage: Path, tmp_path: Path
) -> None:
    """The concourse test's config (2×2 tiling, plain 416 as shadow), through `takt edge eval`."""
    summaries = {}
    for gating in (False, True):
        doc = _doc(registry, shared_footage, tmp_path, gating, ["group", "lone", "empty", "walkway"])
        doc["detector"]["shadow"] = {k: v for k, v in doc["detector"].items() if k != "tiling"}
        config = tmp_path / f"edge-{gating}.yaml"
        config.write_text(yaml.safe_dump(doc))
        out = tmp_path / f"eval-{gating}.json"
        result = CliRunner().invoke(
            main, ["edge", "eval", "--config", str(config), "--truth", str(TRUTH), "--json-out", str(out)]
        )
        assert result.exit_code == 0, result.output
        summaries[gating] = json.loads(out.read_text())
    assert summaries[True]["frames"] == summaries[False]["frames"] == 69
    for part in ("primary", "shadow"):
        assert summaries[True][part] == summaries[False][part]


def test_a_person_standing_still_keeps_his_state_while_the_detector_skips_frames(
    registry: Path, shared_footage: Path, tmp_path: Path
) -> None:
    """The lone man stands still (walkers brush past now and then): a camera watching only him."""
    off, _, off_agent = _run(registry, shared_footage, tmp_path, False, ["lone"])
    on, _, on_agent = _run(registry, shared_footage, tmp_path, True, ["lone"])
    assert _shares(on) == _shares(off)
    assert on.stations["lone"].predicted_share()["absent"] == 0.0  # never lost while skipped
    assert on.stations["lone"].agreement >= 0.75
    frames = on_agent.frames
    seen = on_agent.pipeline.scheduler.detections
    assert off_agent.pipeline.scheduler.detections == frames == 69
    assert seen < frames * 0.7, f"the detector saw {seen} of {frames} frames"
    status = CameraStatus.model_validate(on_agent.status_fields()["cameras"][0])
    assert status.gated and status.frames_gated == frames - seen and status.frames_deferred == 0


def test_people_working_in_place_stay_working_while_the_detector_skips_frames(
    registry: Path, shared_footage: Path, tmp_path: Path
) -> None:
    """The standing group gestures and turns: mostly working (by motion energy, measured on every
    frame, detected or not), and so it stays with gating."""
    off, _, _ = _run(registry, shared_footage, tmp_path, False, ["group"])
    on, _, on_agent = _run(registry, shared_footage, tmp_path, True, ["group"])
    assert _shares(on) == _shares(off)
    assert on.stations["group"].predicted_share()["working"] >= 0.75
    assert on.stations["group"].predicted_share()["absent"] == 0.0
    assert on_agent.pipeline.scheduler.frames_gated > 0


def test_a_person_leaving_a_zone_turns_it_absent_as_without_gating(
    registry: Path, shared_footage: Path, tmp_path: Path
) -> None:
    results = {g: _run(registry, shared_footage, tmp_path, g, ["leaving", "empty"]) for g in (False, True)}

    def absent_from(events: list[Event]) -> float:
        (change,) = [
            e
            for e in events
            if e.station_id == "leaving" and e.event_type is EventType.ABSENT and e.duration_s == 0
        ]
        return (change.timestamp - EVAL_ORIGIN).total_seconds()

    left_off, left_on = (absent_from(results[g][1]) for g in (False, True))
    # Absent from when the men left, by hand between 2.7 and 3.1 s; gated, at the same frame.
    assert 2.7 <= left_on <= 3.1
    assert left_on == pytest.approx(left_off, abs=0.01)
    on = results[True][0].stations["leaving"]
    assert on.agreement >= 0.95
    assert _shares(results[True][0]) == _shares(results[False][0])
    # The detector ran because the zone moved while they walked, then only to re-check.
    scheduler = results[True][2].pipeline.scheduler
    assert scheduler.by_reason[MOTION] >= 20 and scheduler.detections < results[True][2].frames


def test_a_camera_without_motion_is_still_rechecked(
    registry: Path, shared_footage: Path, tmp_path: Path
) -> None:
    model, _, agent = _run(registry, shared_footage, tmp_path, True, ["empty"])
    scheduler = agent.pipeline.scheduler
    recheck_s = agent.config.detector.gating.recheck_s
    # Nobody steps on this floor: no motion, so the detector sees the first frame and then one
    # frame every recheck_s of the 6.8 s clip, each one run for real (2×2 tiles + whole frame).
    assert scheduler.by_reason[MOTION] == 0
    assert scheduler.by_reason[RECHECK] == int((agent.frames - 1) * 0.1 // recheck_s)
    assert scheduler.detections == 1 + scheduler.by_reason[RECHECK]
    assert agent.pipeline.detector.session_runs == scheduler.detections * 5
    assert model.stations["empty"].predicted_share()["absent"] == 1.0
