"""`takt edge eval` end to end on synthetic footage, whose renderer writes the ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from takt.cli import main
from tests.edge_agent.test_cli import _write

UNUSED_BROKER = "mqtt://unused@127.0.0.1:1"  # an evaluation never needs one


def _run(config: Path, truth: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["edge", "eval", "--config", str(config), "--truth", str(truth), *extra])


def _eval(config: Path, truth: Path, *extra: str) -> tuple[int, str]:
    result = _run(config, truth, *extra)
    return result.exit_code, result.output


def test_eval_scores_production_and_a_shadow_candidate_side_by_side(
    demo_footage: tuple[Path, Path], tmp_path: Path
) -> None:
    config = _write(demo_footage, tmp_path, UNUSED_BROKER)
    doc = yaml.safe_load(config.read_text())
    # A candidate that sees no one: its motion blobs must be larger than the frame.
    doc["detector"]["shadow"] = {"backend": "motion", "motion": {"person_min_area": 10**6}}
    config.write_text(yaml.safe_dump(doc))
    out = tmp_path / "eval.json"
    code, output = _eval(
        config,
        demo_footage[1],
        "--json-out",
        str(out),
        "--min-state-agreement",
        "0.9",
        "--max-count-error",
        "0.1",
    )
    assert code == 0, output
    summary = json.loads(out.read_text())
    truth = json.loads(demo_footage[1].read_text())
    primary = summary["primary"]
    assert not primary["shadow"] and summary["failures"] == []
    for sid, station in primary["stations"].items():
        assert station["state_agreement"] >= 0.9, sid
        assert station["scored_s"] == truth["duration_s"]
        for state, seconds in truth["stations"][sid]["totals_s"].items():
            assert station["truth_share"][state] == round(seconds / truth["duration_s"], 4)
            assert abs(station["predicted_share"][state] - station["truth_share"][state]) < 0.05, (sid, state)
    assert primary["stations"]["st-2"]["predicted_count"] == truth["product_count"] > 0
    (shadow,) = summary["shadow"]
    assert shadow["shadow"]
    for station in shadow["stations"].values():
        # It calls every station absent: right only while nobody is there.
        assert station["predicted_share"]["absent"] > 0.95
        assert station["state_agreement"] < 0.4
    # The table a person reads: both models, each station.
    assert output.count("(shadow)") == 2 and "st-1" in output and "st-2" in output


def test_eval_fails_below_the_thresholds(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    config = _write(demo_footage, tmp_path, UNUSED_BROKER)
    # 100 frames at 5 fps: 20 s of the 90 s the truth scores, the rest unobserved.
    result = _run(config, demo_footage[1], "--max-frames", "100", "--min-state-agreement", "0.9",
                  "--json-out", "-")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "FAIL st-1: state agreement" in result.stderr and "FAIL st-2: state agreement" in result.stderr
    assert "agent W / I / A" in result.stderr  # the table, out of the JSON's way
    document = json.loads(result.stdout)  # stdout is the JSON alone
    assert document["frames"] == 100
    assert len(document["failures"]) == 2
    assert 0.1 < document["primary"]["state_agreement"] < 0.3


def test_eval_refuses_a_bad_truth_file(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    config = _write(demo_footage, tmp_path, UNUSED_BROKER)
    bad = tmp_path / "truth.json"
    bad.write_text(
        json.dumps({"stations": {"st-1": {"segments": [{"state": "busy", "start_s": 0, "end_s": 1}]}}})
    )
    code, output = _eval(config, bad)
    assert code == 2 and "stations.st-1.segments.0.state" in output
    bad.write_text("{not json")
    code, output = _eval(config, bad)
    assert code == 2 and "truth.json" in output


def test_eval_needs_a_recording_not_a_live_camera(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    config = _write(demo_footage, tmp_path, UNUSED_BROKER)
    doc = yaml.safe_load(config.read_text())
    doc["camera"]["source"] = "rtsp://192.0.2.1/stream"
    config.write_text(yaml.safe_dump(doc))
    code, output = _eval(config, demo_footage[1])
    assert code == 2 and "live camera" in output
