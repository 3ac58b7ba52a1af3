"""The real detector on the real clip, scored by `takt edge eval` against a truth written by hand.

Reads the YOLOX-Nano weights and the concourse clip from ../shared; skipped where either is absent.
Zones: edge_agent/concourse.py. Truth: tests/edge_agent/concourse.truth.json. What the detector
gets wrong here is recorded in docs/edge-agent.md ("The concourse clip").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from edge_agent.concourse import concourse_config
from takt.cli import main
from tests.conftest import SHARED_DIR

pytestmark = pytest.mark.slow
WEIGHTS = SHARED_DIR / "models" / "yolox_nano.onnx"
TRUTH = Path(__file__).with_name("concourse.truth.json")
MODEL = "yolox-nano@2026.12.1"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not WEIGHTS.exists():
        pytest.skip(f"YOLOX-Nano weights not present at {WEIGHTS}")
    reg = tmp_path_factory.mktemp("models")
    name, version = MODEL.split("@")
    result = CliRunner().invoke(
        main, ["models", "register", str(WEIGHTS), "--name", name, "--version", version,
               "--models-dir", str(reg), "--no-copy"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return reg


def test_real_people_in_drawn_zones_get_the_states_written_by_hand(
    registry: Path, shared_footage: Path, tmp_path: Path
) -> None:
    """Production with 2x2 tiling, the plain 416 input as a shadow candidate: one run, both scored."""
    doc = concourse_config(
        shared_footage,
        models_dir=registry,
        model=MODEL,
        mqtt_url="mqtt://unused@127.0.0.1:1",
        buffer_path=tmp_path / "buffer.sqlite",
    )
    doc["detector"]["shadow"] = {k: v for k, v in doc["detector"].items() if k != "tiling"}
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump(doc))
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        main, ["edge", "eval", "--config", str(config), "--truth", str(TRUTH), "--json-out", str(out),
               "--min-state-agreement", "0.75"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["frames"] == 69  # 341 frames at 50 fps, sampled at 10 fps

    def station(model: dict[str, Any], sid: str) -> dict[str, Any]:
        found: dict[str, Any] = model["stations"][sid]
        assert found["scored_s"] == pytest.approx(6.8)
        return found

    tiled, (plain,) = summary["primary"], summary["shadow"]
    for model in (tiled, plain):
        # Nobody on the empty floor, someone moving through the walkway in every frame.
        assert station(model, "empty")["predicted_share"]["absent"] == 1.0
        assert station(model, "walkway")["predicted_share"]["working"] >= 0.9
        # The group is seen in every frame (each frame at least one of the four is found).
        assert station(model, "group")["predicted_share"]["absent"] == 0.0
    lone = station(tiled, "lone")
    # Tiled, the man standing alone is always found and mostly still ...
    assert lone["predicted_share"]["absent"] == 0.0
    assert lone["state_agreement"] >= 0.75
    # ... but walkers brushing past his box lend him their motion: not always idle.
    assert lone["predicted_share"]["working"] > 0.0
    # Plain 416 input: he is found in about a quarter of the frames, never long enough to count.
    assert station(plain, "lone")["predicted_share"]["absent"] >= 0.9
    assert "(shadow)" in result.output
