from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from takt.cli import main
from takt.contract import Event, EventType
from tests.edge_agent.test_cli import _write


def run_offline(config: Path, out: Path, max_frames: int = 200) -> Result:
    """`takt edge run --offline --events-out OUT` on ``config``; asserts it exits 0."""
    args = ["edge", "run", "--config", str(config), "--offline", "--events-out", str(out)]
    result = CliRunner().invoke(main, [*args, "--max-frames", str(max_frames)])
    assert result.exit_code == 0, result.output
    return result


def test_offline_run_writes_every_event_as_a_json_line(
    demo_footage: tuple[Path, Path], tmp_path: Path
) -> None:
    # An unreachable broker: an offline run must never need one.
    config = _write(demo_footage, tmp_path, "mqtt://unused@127.0.0.1:1")
    out = tmp_path / "events.jsonl"
    result = run_offline(config, out)
    lines = out.read_text().splitlines()
    events = [Event.model_validate(json.loads(line)) for line in lines]
    assert events, "no events"
    seqs = [e.seq or 0 for e in events]
    assert seqs == sorted(set(seqs)) and seqs[0] > 0  # one line per event, in order
    assert {EventType.WORKING, EventType.IDLE, EventType.ABSENT} & {e.event_type for e in events}
    assert "200 frames" in result.output


def test_offline_needs_an_events_file(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    config = _write(demo_footage, tmp_path, "mqtt://unused@127.0.0.1:1")
    result = CliRunner().invoke(main, ["edge", "run", "--config", str(config), "--offline"])
    assert result.exit_code == 2 and "go together" in result.output
