"""``takt demo``: the whole pipeline on one machine, stopped cleanly with Ctrl-C.

Real Mosquitto and PostgreSQL on loopback (the dev stack), the schema
migrated, history seeded up to the moment the demo starts, the collector, the API with the
dashboard, and three edge agents watching synthetic factory footage in real
time. Where the YOLOX-Nano weights and the concourse clip are beside the project
(``../shared``), a fourth gateway runs the real detector on the real clip, looped in
real time, so four stations' states come from real people. Everything runs as
separate processes, as in production.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import psycopg
import yaml

from devstack.processes import ProcessGroup
from devstack.stack import DEFAULT_MQTT_PORT, DEFAULT_PG_PORT, DevStack
from takt.logs import configure_logging

logger = logging.getLogger(__name__)

DEMO_SITE = "demo-site"
DEMO_GATEWAYS = 3
# Each gateway watches its own line of two stations, with its own workers.
DEMO_WORKERS = [
    ("w-ana", "Ana Souza"),
    ("w-ben", "Ben Okafor"),
    ("w-chen", "Chen Wei"),
    ("w-dara", "Dara Nolan"),
    ("w-emil", "Emil Berg"),
    ("w-fatima", "Fatima Rahman"),
]


# The live lines' footage: a realistic stretch of a shift, looped. Seconds per unit while
# working (one unit per cycle at each station); line 3 is the slow one.
CLIP_S = 600.0
NORMAL_CYCLE_S = (40.0, 80.0)
LINE_CYCLE_S = {3: (85.0, 120.0)}
FOOTAGE_NAME = "shift"  # renamed when the scene changes, so an older .takt/demo is re-rendered

# The gateway that watches real people: the COCO-pretrained detector on the concourse clip
# with the zones drawn on it (edge_agent/concourse.py). Read from beside the project.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_WEIGHTS = SHARED / "models" / "yolox_nano.onnx"
REAL_CLIP = SHARED / "footage" / "concourse-720p.avi"
REAL_MODEL = ("yolox-nano", "2026.12.1")
REAL_GATEWAY = "gw-concourse"
REAL_PREFIX = "concourse-"
# 2x2 tiling costs five inferences a frame (~125 ms on one core): 3 frames a second keeps
# the gateway under half a core beside the rest of the demo.
REAL_SAMPLE_FPS = 3.0
REAL_STATIONS = {
    "group": ("Concourse standing group", ("w-gita", "Gita Rao")),
    "lone": ("Concourse lone stand", ("w-hugo", "Hugo Lind")),
    "empty": ("Concourse empty floor", ("w-ines", "Ines Costa")),
    "walkway": ("Concourse walkway", ("w-jon", "Jon Park")),
}


def _takt(*args: str) -> list[str]:
    return [sys.executable, "-m", "takt.cli", *args]


def edge_config(stack: DevStack, demo_dir: Path, line: int) -> Path:
    """Render footage for one line (once) and write its agent configuration."""
    from edge_agent.synthetic import demo_config, render

    line_dir = demo_dir / f"line{line}"
    video = line_dir / f"{FOOTAGE_NAME}.avi"
    truth = line_dir / f"{FOOTAGE_NAME}.ground_truth.json"
    if not (video.exists() and truth.exists()):
        video, truth = render(
            line_dir, seed=line, duration_s=CLIP_S, cycle_s=LINE_CYCLE_S.get(line, NORMAL_CYCLE_S),
            name=FOOTAGE_NAME,
        )  # fmt: skip
    gateway_id = f"gw-line{line}"
    config: dict[str, Any] = demo_config(
        video,
        truth,
        buffer_path=line_dir / "buffer.sqlite",
        mqtt_url=stack.gateway_mqtt_url(DEMO_SITE, gateway_id),
    )
    prefix = f"line{line}-"
    config["site_id"], config["gateway_id"] = DEMO_SITE, gateway_id
    config["camera"].update(id=f"cam-line{line}", loop=True, realtime=True)
    config["camera"].pop("start_time", None)  # stamp frames with the wall clock
    for station in config["stations"]:
        station["id"] = prefix + station["id"]
    for count_line in config["count_lines"]:
        count_line["station_id"] = prefix + count_line["station_id"]
    # One worker per station round the clock (two half-day entries: no gap at midnight).
    stations = sorted({entry["station_id"] for entry in config["roster"]})
    config["roster"] = [
        {
            "station_id": prefix + station,
            "worker_id": DEMO_WORKERS[(line - 1) * 2 + i][0],
            "start": start,
            "end": end,
        }
        for i, station in enumerate(stations)
        for start, end in (("00:00:00", "12:00:00"), ("12:00:00", "00:00:00"))
    ]
    path = line_dir / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def real_edge_config(stack: DevStack, demo_dir: Path, weights: Path, clip: Path) -> Path:
    """Register the real weights (by reference, hash checked) and write the concourse gateway's config."""
    from edge_agent.concourse import concourse_config

    real_dir = demo_dir / "concourse"
    models_dir = real_dir / "models"
    name, version = REAL_MODEL
    subprocess.run(
        _takt("models", "register", str(weights), "--name", name, "--version", version,
              "--models-dir", str(models_dir), "--no-copy"),
        check=True,
        capture_output=True,
    )  # fmt: skip
    config = concourse_config(
        clip,
        models_dir=models_dir,
        model=f"{name}@{version}",
        mqtt_url=stack.gateway_mqtt_url(DEMO_SITE, REAL_GATEWAY),
        buffer_path=real_dir / "buffer.sqlite",
        sample_fps=REAL_SAMPLE_FPS,
        prefix=REAL_PREFIX,
    )
    config["site_id"], config["gateway_id"] = DEMO_SITE, REAL_GATEWAY
    config["camera"].update(loop=True, realtime=True)
    config["roster"] = [
        {"station_id": REAL_PREFIX + sid, "worker_id": worker[0], "start": start, "end": end}
        for sid, (_, worker) in REAL_STATIONS.items()
        for start, end in (("00:00:00", "12:00:00"), ("12:00:00", "00:00:00"))
    ]
    path = real_dir / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def register_demo_names(database_url: str, *, real: bool = False) -> None:
    """Names for the live lines' workers and stations (events would register bare ids)."""
    workers = DEMO_WORKERS + ([worker for _, worker in REAL_STATIONS.values()] if real else [])
    with psycopg.connect(database_url) as conn:
        if real:
            for sid, (station_name, _) in REAL_STATIONS.items():
                conn.execute(
                    "INSERT INTO workstations (station_id, name, type, location) "
                    "VALUES (%s, %s, 'concourse', 'concourse') "
                    "ON CONFLICT (station_id) DO UPDATE SET name = excluded.name, type = excluded.type, "
                    "registered = true",
                    (REAL_PREFIX + sid, station_name),
                )
        for worker_id, name in workers:
            conn.execute(
                "INSERT INTO workers (worker_id, name, department, shift) VALUES (%s, %s, 'demo', 'day') "
                "ON CONFLICT (worker_id) DO UPDATE SET name = excluded.name, registered = true",
                (worker_id, name),
            )
        for line in range(1, DEMO_GATEWAYS + 1):
            for number, kind in ((1, "assembly"), (2, "packaging")):
                conn.execute(
                    "INSERT INTO workstations (station_id, name, type, location) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (station_id) DO UPDATE SET name = excluded.name, type = excluded.type, "
                    "registered = true",
                    (f"line{line}-st-{number}", f"Line {line} {kind}", kind, f"line {line}"),
                )


# Loss reasons of the demo site, and the one the demo tags its lines' start-up with.
DEMO_REASONS = (
    ("changeover", "Changeover"),
    ("material", "Waiting for material"),
    ("startup", "Start-up of the line"),
)


# The demo site's calendar: one shift from the moment the demo starts, with a planned break,
# so planned production time (and every target on the wallboard, the cards and the
# hour-by-hour board) runs from the demo's start, not from the site's midnight.
DEMO_SHIFT = timedelta(hours=8)
DEMO_BREAK = (timedelta(minutes=45), timedelta(minutes=15))  # after the start, how long


def demo_calendar(start: datetime) -> dict[str, Any]:
    """``TAKT_CALENDARS`` for the demo: shift "demo" from ``start`` (to the minute, UTC) for
    :data:`DEMO_SHIFT`, its planned break :data:`DEMO_BREAK` in. Across midnight the shift
    ends the next day (end <= start)."""
    begin = start.astimezone(UTC).replace(second=0, microsecond=0)
    after, length = DEMO_BREAK

    def hhmm(at: datetime) -> str:
        return at.strftime("%H:%M")

    shift = {
        "name": "demo",
        "start": hhmm(begin),
        "end": hhmm(begin + DEMO_SHIFT),
        "breaks": [{"start": hhmm(begin + after), "end": hhmm(begin + after + length)}],
    }
    return {DEMO_SITE: {"timezone": "UTC", "shifts": [shift]}}


def register_demo_targets(database_url: str, now: datetime) -> None:
    """Lines, targets, loss reasons and tagged losses for the live lines (docs/metrics.md, "Targets").

    Each line's stations get the fast end of their cycle range as the ideal cycle time, in force
    from ``now`` (the demo's start): the demo's own earlier target rows go, so no target asks
    for units from before this run (with :func:`demo_calendar`, every target on the wallboard,
    the cards and the hour-by-hour board counts this run's planned time only). The first
    quarter hour of each line from ``now`` is tagged "startup" (the loss while the edge agents
    come up). Repeats with the same ``now`` keep what is there.
    """
    with psycopg.connect(database_url) as conn:
        for line in range(1, DEMO_GATEWAYS + 1):
            stations = [f"line{line}-st-{n}" for n in (1, 2)]
            conn.execute(
                "INSERT INTO lines (line_id, site_id, name, updated_by) VALUES (%s, %s, %s, 'demo') "
                "ON CONFLICT (line_id) DO NOTHING",
                (f"line-{line}", DEMO_SITE, f"Line {line}"),
            )
            for position, station in enumerate(stations):
                conn.execute(
                    "INSERT INTO line_stations (line_id, position, station_id) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (f"line-{line}", position, station),
                )
                conn.execute(
                    "DELETE FROM station_targets WHERE station_id = %s AND set_by = 'demo' "
                    "AND effective_from <> %s",
                    (station, now),
                )
                conn.execute(
                    "INSERT INTO station_targets (station_id, effective_from, ideal_cycle_time_s, set_by) "
                    "SELECT %(st)s, %(at)s, %(ict)s, 'demo' WHERE NOT EXISTS "
                    "(SELECT 1 FROM station_targets WHERE station_id = %(st)s AND set_by = 'demo')",
                    {"st": station, "at": now, "ict": LINE_CYCLE_S.get(line, NORMAL_CYCLE_S)[0]},
                )
        for code, label in DEMO_REASONS:
            conn.execute(
                "INSERT INTO loss_reasons (site_id, code, label, created_by) VALUES (%s, %s, %s, 'demo') "
                "ON CONFLICT (site_id, code) DO NOTHING",
                (DEMO_SITE, code, label),
            )
        startup = timedelta(minutes=15)
        for line in range(1, DEMO_GATEWAYS + 1):
            for n in (1, 2):
                conn.execute(
                    "INSERT INTO loss_tags (site_id, station_id, from_ts, to_ts, reason_id, tagged_by) "
                    "SELECT %(site)s, %(st)s, %(a)s, %(b)s, reason_id, 'demo' FROM loss_reasons "
                    "WHERE site_id = %(site)s AND code = 'startup' AND NOT EXISTS ("
                    "  SELECT 1 FROM loss_tags WHERE station_id = %(st)s "
                    "  AND from_ts < %(b)s AND to_ts > %(a)s)",
                    {"site": DEMO_SITE, "st": f"line{line}-st-{n}", "a": now, "b": now + startup},
                )


def seed_history(base_url: str, admin_token: str) -> None:
    """History up to now through the API's own seed endpoint (a repeat reproduces the past)."""
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        f"{base_url}/api/seed", method="POST", headers={"Authorization": f"Bearer {admin_token}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        logger.info("seeded history: %s", json.loads(response.read())["message"])


def wait_for_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


@click.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".takt"),
    show_default=True,
    help="Where the demo keeps its broker, database, footage and buffers.",
)
@click.option("--port", type=int, default=8000, show_default=True, help="Port of the API and dashboard.")
@click.option("--mqtt-port", type=int, default=DEFAULT_MQTT_PORT, show_default=True)
@click.option("--pg-port", type=int, default=DEFAULT_PG_PORT, show_default=True)
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Stop by itself after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--real-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=REAL_WEIGHTS,
    show_default=True,
    help="YOLOX-Nano ONNX weights for the gateway that watches real people (skipped where absent).",
)
@click.option(
    "--real-footage",
    type=click.Path(dir_okay=False, path_type=Path),
    default=REAL_CLIP,
    show_default=True,
    help="The concourse clip that gateway watches, looped in real time.",
)
def demo(
    state_dir: Path,
    port: int,
    mqtt_port: int,
    pg_port: int,
    duration: float | None,
    real_weights: Path,
    real_footage: Path,
) -> None:
    """Run the whole pipeline on this machine with synthetic factory footage.

    Starts Mosquitto and PostgreSQL on loopback, migrates and seeds the
    database, then runs the collector, the API with the dashboard and three
    edge agents as separate processes. Where --real-weights and --real-footage
    exist, a fourth agent runs the real detector on the real clip (four
    concourse stations); without them the demo says so and runs without it.
    Prints the dashboard URL and an admin token. Ctrl-C stops everything; data
    stays in --state-dir.
    """
    from takt.store.db import upgrade

    configure_logging()
    stack = DevStack(state_dir, mqtt_port=mqtt_port, pg_port=pg_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    group = ProcessGroup()
    try:
        stack.up(detach=False)
        upgrade(stack.database_url)
        admin_token = stack.secret("api:admin")
        started = datetime.now(UTC)
        cloud_env = {
            "TAKT_MQTT_URL": stack.collector_mqtt_url,
            "TAKT_DATABASE_URL": stack.database_url,
            "TAKT_SITE_ID": DEMO_SITE,
            "TAKT_ADMIN_TOKEN": admin_token,
            "TAKT_CALENDARS": json.dumps(demo_calendar(started)),
        }
        real = real_weights.is_file() and real_footage.is_file()
        register_demo_names(stack.database_url, real=real)
        register_demo_targets(stack.database_url, started)
        group.start("collector", _takt("collector"), cloud_env)
        group.start("api", _takt("api", "--host", "127.0.0.1", "--port", str(port)), cloud_env)
        demo_dir = stack.state_dir / "demo"
        for line in range(1, DEMO_GATEWAYS + 1):
            config = edge_config(stack, demo_dir, line)
            group.start(f"edge-line{line}", _takt("edge", "run", "--config", str(config)))
        if real:
            config = real_edge_config(stack, demo_dir, real_weights, real_footage)
            group.start("edge-concourse", _takt("edge", "run", "--config", str(config)))
            real_line = (
                f"  Real people: {REAL_GATEWAY} runs YOLOX-Nano on {real_footage.name} "
                f"(stations {REAL_PREFIX}*)\n"
            )
        else:
            missing = real_weights if not real_weights.is_file() else real_footage
            real_line = f"  Real people: off ({missing} not found); synthetic lines only\n"
        base = f"http://127.0.0.1:{port}"
        if not wait_for_http(f"{base}/health", 60):
            raise click.ClickException(f"the API did not answer on {base}/health")
        seed_history(base, admin_token)
        click.echo(
            "\n"
            f"  Dashboard:   {base}/\n"
            f"  Login token: {admin_token}   (admin)\n"
            f"  API docs:    {base}/docs\n"
            f"  Metrics:     curl -H 'Authorization: Bearer {admin_token}' {base}/api/metrics/factory\n"
            f"{real_line}"
            "  Stop with Ctrl-C.\n"
        )
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.wait(1.0):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if failed := group.failed():
                raise click.ClickException(f"demo process(es) exited with an error: {', '.join(failed)}")
    except KeyboardInterrupt:
        pass
    finally:
        group.stop()
        stack.down()
        click.echo("demo stopped")
