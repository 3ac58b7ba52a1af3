"""A gateway install (`pip install '.[edge]'`) needs none of the cloud roles' libraries."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

CLOUD_LIBRARIES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "psycopg_pool", "starlette")

# Runs `takt` with the cloud libraries made unimportable, as on a gateway.
BLOCKED_TAKT = f"""
import sys
from importlib.abc import MetaPathFinder

class Blocked(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {CLOUD_LIBRARIES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Blocked())
from takt.cli import main
sys.argv = ["takt", *sys.argv[1:]]
main()
"""


def _takt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_TAKT, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_the_edge_extras_pull_in_no_cloud_library() -> None:
    reqs = requires("takt") or []
    for req in reqs:
        name = re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower().replace("-", "_")
        extra = re.search(r'extra\s*==\s*"([^"]+)"', req)
        if name in CLOUD_LIBRARIES:
            assert extra is not None and extra.group(1) == "cloud", req


def test_a_gateway_runs_its_commands_without_the_cloud_libraries(tmp_path: Path) -> None:
    listing = _takt("--help", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"api\s+\(not installed: needs the `cloud` extra\)", listing.stdout)
    assert re.search(r"edge\s+The edge agent", listing.stdout)

    demo = tmp_path / "demo"
    made = _takt("edge", "make-demo-footage", "--out", str(demo), "--duration", "3", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    check = _takt("edge", "check", "--config", str(demo / "edge.yaml"), cwd=tmp_path)
    assert re.search(r"model\s+PASS", check.stdout), check.stdout + check.stderr
    assert "ModuleNotFoundError" not in check.stderr

    refused = _takt("api", "token", "create", "--role", "viewer", cwd=tmp_path)
    assert refused.returncode == 2
    assert "pip install 'takt[cloud]'" in refused.stderr
