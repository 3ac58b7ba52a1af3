"""The site's privacy level is applied on the gateway: what leaves it (docs/privacy.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge_agent.config import ConfigError, load_config
from takt.contract import Event
from takt.privacy import PrivacyLevel, pseudonym, resolve
from tests.edge_agent.test_cli import _write
from tests.edge_agent.test_offline import run_offline

KEY = b"0123456789abcdef-site-key"


def _run(
    demo: tuple[Path, Path], tmp_path: Path, privacy: dict[str, str] | None
) -> tuple[list[Event], str, list[str]]:
    config = _write(demo, tmp_path, "mqtt://unused@127.0.0.1:1")
    doc = yaml.safe_load(config.read_text())
    roster = sorted({r["worker_id"] for r in doc["roster"]})
    if privacy is not None:
        doc["privacy"] = privacy
        config.write_text(yaml.safe_dump(doc))
    out = tmp_path / "events.jsonl"
    run_offline(config, out)
    text = out.read_text()
    return [Event.model_validate(json.loads(line)) for line in text.splitlines()], text, roster


def test_named_sends_the_roster_ids(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    events, _, roster = _run(demo_footage, tmp_path, None)
    assert {e.worker_id for e in events} & set(roster)


def test_pseudonymous_sends_keyed_pseudonyms_only(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "site.key").write_bytes(KEY)
    # A relative key_file is relative to the config file.
    events, text, roster = _run(demo_footage, tmp_path, {"level": "pseudonymous", "key_file": "site.key"})
    sent = {e.worker_id for e in events} - {"unknown"}
    assert sent and all(w.startswith("p-") for w in sent)
    assert not [r for r in roster if f'"{r}"' in text]  # no roster id leaves the gateway
    # Whoever holds the key can tell which roster id one pseudonym stands for; nobody else can.
    one = sorted(sent)[0]
    found = resolve(KEY, "s-1", one, roster)
    assert found in roster and pseudonym(KEY, "s-1", found) == one
    assert resolve(b"another-key-of-16-bytes", "s-1", one, roster) is None


def test_stations_only_sends_no_worker_id(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    events, _, _ = _run(demo_footage, tmp_path, {"level": "stations-only"})
    assert events and {e.worker_id for e in events} == {"unknown"}


def test_pseudonymous_needs_a_readable_key(demo_footage: tuple[Path, Path], tmp_path: Path) -> None:
    config = _write(demo_footage, tmp_path, "mqtt://unused@127.0.0.1:1")
    doc = yaml.safe_load(config.read_text())
    doc["privacy"] = {"level": "pseudonymous"}
    config.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="key_file"):
        load_config(config)
    doc["privacy"]["key_file"] = "short.key"
    (tmp_path / "short.key").write_bytes(b"short")
    config.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="16 bytes"):
        load_config(config).privacy.outgoing("s-1")


def test_pseudonyms_differ_per_site_and_keep_unknown() -> None:
    assert pseudonym(KEY, "a", "W1") != pseudonym(KEY, "b", "W1")
    assert pseudonym(KEY, "a", "W1") == pseudonym(KEY, "a", "W1")
    assert pseudonym(KEY, "a", "unknown") == "unknown"
    assert (
        len(pseudonym(KEY, "a", "W1")) == 22 and PrivacyLevel("stations-only") is PrivacyLevel.STATIONS_ONLY
    )
    with pytest.raises(ValueError, match="16 bytes"):
        pseudonym(b"short", "a", "W1")
