"""Edge agent benchmarks: frames/s per backend, frame-to-event latency, replay drain rate.

Usage (from the repository root, inside .venv):
    python bench/edge.py all                  # motion, latency, drain (1,000,000 events)
    python bench/edge.py motion
    python bench/edge.py yolo --onnx yolo11n-640.onnx --imgsz 640 [--pt yolo11n.pt]
    python bench/edge.py drain --events 1000000
    python bench/edge.py cameras --counts 1,2,4,8 --seconds 40   # YOLOX-Nano, many cameras, 5 fps,
                                                                 # motion gating off and on side by side
Prints one line per figure; docs/benchmarks.md records them.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONCOURSE = ROOT.parent / "shared" / "footage" / "concourse-720p.avi"
YOLOX = ROOT.parent / "shared" / "models" / "yolox_nano.onnx"


def _frames(path: Path, limit: int = 10_000) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def bench_motion() -> None:
    from edge_agent.config import MotionConfig
    from edge_agent.detect.motion import MotionDetector
    from edge_agent.synthetic import render

    with tempfile.TemporaryDirectory() as tmp:
        video, _ = render(Path(tmp), seed=7, duration_s=60)
        frames = _frames(video)
    det = MotionDetector(MotionConfig())
    start = time.perf_counter()
    for i, f in enumerate(frames):
        det.detect(f, i / 10)
    elapsed = time.perf_counter() - start
    print(f"motion detector, synthetic 320x240: {len(frames) / elapsed:,.0f} frames/s")
    if CONCOURSE.exists():
        import cv2

        raw = _frames(CONCOURSE)
        for width in (1280, 640, 320):
            scaled = [cv2.resize(f, (width, width * 9 // 16)) if width != 1280 else f for f in raw]
            det = MotionDetector(MotionConfig(person_min_area=150 * (width / 320) ** 2))
            start = time.perf_counter()
            for i, f in enumerate(scaled):
                det.detect(f, i / 25)
            elapsed = time.perf_counter() - start
            print(f"motion detector, concourse at {width} px wide: {len(scaled) / elapsed:,.0f} frames/s")
    bench_pipeline()


def bench_pipeline() -> None:
    """Whole agent per frame (decode excluded): detection, tracking, states, events committed to SQLite."""
    from edge_agent.agent import Agent
    from edge_agent.config import parse_config
    from edge_agent.sources import Frame, VideoSource
    from edge_agent.synthetic import demo_config, render

    with tempfile.TemporaryDirectory() as tmp:
        video, truth = render(Path(tmp), seed=7, duration_s=90)
        config = parse_config(
            demo_config(video, truth, buffer_path=Path(tmp) / "b.sqlite", mqtt_url="mqtt://x@h")
        )
        config = config.model_copy(update={"camera": config.camera.model_copy(update={"sample_fps": 10})})
        agent = Agent(config)
        items = [f for f in VideoSource(config.camera).frames(threading.Event()) if isinstance(f, Frame)]
        per_frame, with_events = [], []
        start = time.perf_counter()
        for item in items:
            t0 = time.perf_counter()
            events = agent.process_frame(item)
            dt = (time.perf_counter() - t0) * 1000
            per_frame.append(dt)
            if events:
                with_events.append(dt)
        elapsed = time.perf_counter() - start
    q = statistics.quantiles(with_events, n=20)
    print(f"agent pipeline (motion, 320x240, fsync'd buffer): {len(items) / elapsed:,.0f} frames/s")
    print(
        "frame-to-event-committed latency (frames that emitted events): "
        f"p50 {statistics.median(with_events):.2f} ms, "
        f"p95 {q[18]:.2f} ms, max {max(with_events):.2f} ms"
    )


def bench_yolo(onnx_path: str | None, pt_path: str | None, imgsz: int, frames_n: int = 60) -> None:
    frames = (
        _frames(CONCOURSE, frames_n)
        if CONCOURSE.exists()
        else [np.zeros((720, 1280, 3), np.uint8)] * frames_n
    )
    if onnx_path:
        from edge_agent.detect.yolo import OnnxYoloDetector
        from models.registry import ModelManifest, sha256_file

        names = [f"c{i}" for i in range(80)]
        names[0] = "person"
        manifest = ModelManifest(
            name="yolo11n",
            version="arch",
            format="onnx",
            path=Path(onnx_path),
            sha256=sha256_file(Path(onnx_path)),
            classes=names,
            input_size=imgsz,
            confidence=0.25,
        )
        det = OnnxYoloDetector(manifest, Path(onnx_path), frozenset({"person"}))
        det.detect(frames[0], 0)
        start = time.perf_counter()
        for i, f in enumerate(frames):
            det.detect(f, i)
        elapsed = time.perf_counter() - start
        print(
            f"yolo11n ONNX Runtime CPU at {imgsz}: {len(frames) / elapsed:.1f} frames/s "
            f"({elapsed / len(frames) * 1000:.0f} ms/frame, pre/post-processing included)"
        )
    if pt_path:
        from ultralytics import YOLO

        model = YOLO(pt_path)
        model.predict(frames[0], imgsz=imgsz, verbose=False)
        start = time.perf_counter()
        for f in frames:
            model.predict(f, imgsz=imgsz, verbose=False)
        elapsed = time.perf_counter() - start
        print(
            f"yolo11n PyTorch CPU at {imgsz}: {len(frames) / elapsed:.1f} frames/s "
            f"({elapsed / len(frames) * 1000:.0f} ms/frame)"
        )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _five_fps_clip(out: Path) -> Path:
    """The concourse clip as a 5 fps camera stream (its header says 50 fps: every 10th frame), the
    way an analytics sub-stream is set up, so the decode threads decode what is used."""
    import cv2

    frames = _frames(CONCOURSE)[::10]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (1280, 720))
    for f in frames:
        writer.write(f)
    writer.release()
    return out


def bench_cameras(counts: list[int], seconds: float, zone_sets: list[str]) -> None:
    """Cameras per gateway at 5 fps with YOLOX-Nano (ONNX Runtime, CPU): per zone set and camera
    count, motion gating off then on, one right after the other (frames/s, frame->event latency,
    change->detected latency, detector calls/s, CPU); before that the bare ONNX Runtime time of the
    same model beside the agent's detector path."""
    import os

    import cv2
    import onnxruntime as ort
    from click.testing import CliRunner

    from edge_agent.agent import Agent
    from edge_agent.config import parse_config
    from edge_agent.detect.yolo import letterbox
    from takt.cli import main as takt_main

    if not (YOLOX.exists() and CONCOURSE.exists()):
        print(f"skipped: needs {YOLOX} and {CONCOURSE}")
        return
    print(f"machine: {os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f} (shared machine)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        result = CliRunner().invoke(
            takt_main,
            ["models", "register", str(YOLOX), "--name", "yolox-nano", "--version", "bench",
             "--models-dir", str(tmp / "models")],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        clip = _five_fps_clip(tmp / "concourse-5fps.avi")
        frames = _frames(clip)

        # Bare ONNX Runtime (pre-letterboxed blobs) against the agent's detector path (letterbox,
        # the same session call, decoding, NMS) on the same frames, one after the other.
        session = ort.InferenceSession(str(YOLOX), providers=["CPUExecutionProvider"])
        blobs = [letterbox(f, 416, corner=True, bgr=True, unit_scale=False)[0] for f in frames]
        probe = Agent(parse_config(_cameras_config(tmp, clip, 1)))
        detector = probe.pipelines[0].detector
        prepared = [probe.pipelines[0].prepare(f) for f in frames]
        for _ in range(5):
            session.run(None, {"images": blobs[0]})
            detector.detect(prepared[0], 0.0)
        rounds = 5
        bare = [[0.0] * len(frames) for _ in range(rounds)]
        agent_path = [[0.0] * len(frames) for _ in range(rounds)]
        for rnd in range(rounds):
            for i in range(len(frames)):  # interleaved frame by frame: both see the same load
                # Two sessions, two thread pools: whichever runs second meets the first one's
                # spinning threads, so the order alternates.
                for which in (0, 1) if (i + rnd) % 2 else (1, 0):
                    t0 = time.perf_counter()
                    if which == 0:
                        session.run(None, {"images": blobs[i]})
                        bare[rnd][i] = (time.perf_counter() - t0) * 1000
                    else:
                        detector.detect(prepared[i], float(rnd * 100 + i))
                        agent_path[rnd][i] = (time.perf_counter() - t0) * 1000
        b50 = statistics.median(v for r in bare for v in r)
        a50 = statistics.median(v for r in agent_path for v in r)
        # Per frame, the least disturbed of the rounds: the shared cores' noise mostly adds time.
        bmin = statistics.median(min(r[i] for r in bare) for i in range(len(frames)))
        amin = statistics.median(min(r[i] for r in agent_path) for i in range(len(frames)))
        print(
            f"YOLOX-Nano 416, one frame ({len(frames)} frames x {rounds} rounds): bare ONNX Runtime "
            f"p50 {b50:.1f} ms, agent detector path (letterbox + run + decode + NMS, "
            f"{prepared[0].shape[1]}x{prepared[0].shape[0]} in) p50 {a50:.1f} ms = {a50 / b50:.2f}x; "
            f"best of {rounds} per frame: {bmin:.1f} vs {amin:.1f} ms = {amin / bmin:.2f}x"
        )
        # The same path by its parts (public functions of edge_agent.detect.yolo): what the agent
        # adds to session.run is letterbox + decode + NMS; steadier than the two totals above
        # on a loaded machine, where session.run itself varies by tens of ms between calls.
        from edge_agent.detect.yolo import decode_candidates, to_detections

        classes = detector.manifest.classes
        parts: dict[str, list[float]] = {"letterbox": [], "run": [], "decode": [], "nms": []}
        for _ in range(rounds):
            for img in prepared:
                t0 = time.perf_counter()
                blob, scale, pad = letterbox(img, 416, corner=True, bgr=True, unit_scale=False)
                t1 = time.perf_counter()
                (out,) = session.run(None, {"images": blob})[:1]
                t2 = time.perf_counter()
                found = decode_candidates(
                    np.asarray(out, np.float32), "yolox", len(classes), [0],
                    confidence=detector.confidence, input_size=416, scale=scale, pad=pad,
                )  # fmt: skip
                t3 = time.perf_counter()
                to_detections(found, classes, detector.manifest.iou, (img.shape[1], img.shape[0]))
                t4 = time.perf_counter()
                for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    parts[key].append(dt * 1000)
        med = {k: statistics.median(v) for k, v in parts.items()}
        added = med["letterbox"] + med["decode"] + med["nms"]
        print(
            f"agent detector path by parts (p50): letterbox {med['letterbox']:.2f} ms, session.run "
            f"{med['run']:.1f} ms, decode {med['decode']:.2f} ms, NMS {med['nms']:.2f} ms "
            f"= {(med['run'] + added) / med['run']:.3f}x session.run"
        )
        probe.close()
        del cv2

        from edge_agent.config import HealthConfig
        from edge_agent.health import ViewMonitor

        monitor = ViewMonitor(HealthConfig(), frames[0])
        checks = []
        for i, f in enumerate(frames):
            t0 = time.perf_counter()
            monitor.check(f, i * 10.0)
            checks.append((time.perf_counter() - t0) * 1000)
        print(
            f"camera health check, one 1280x720 frame (every 10 s per camera): "
            f"p50 {statistics.median(checks):.1f} ms, max {max(checks):.1f} ms"
        )

        print(
            "footage: the concourse clip at 5 fps, looped, in real time; zone sets: busy = group + "
            "walkway (people move in them in every frame), quiet = lone + empty (a man standing "
            "still, brushed by walkers; empty floor)"
        )
        print(
            "zones  cameras  gating  fps/camera  dropped  frame->done p50/p95 ms  change->detected "
            "p50/p95 ms  det age max s  detector calls/s  motion share  deferred  CPU cores  load"
        )
        for zones in zone_sets:
            for n in counts:
                for gating in (False, True):  # side by side, the same minute of load
                    _cameras_run(tmp, clip, n, zones, gating, seconds)


def _cameras_run(tmp: Path, clip: Path, n: int, zones: str, gating: bool, seconds: float) -> None:
    import os

    from edge_agent.agent import Agent
    from edge_agent.config import parse_config

    config = parse_config(_cameras_config(tmp, clip, n, zones, gating))
    agent = Agent(config)
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), kwargs={"publish": False})
    cpu0, start = os.times(), time.monotonic()
    runner.start()
    time.sleep(seconds)
    stop.set()
    runner.join(30)
    cpu1, elapsed = os.times(), time.monotonic() - start
    cores = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
    pipelines = agent.pipelines
    lat = [v for p in pipelines for v in list(p.frame_latency_ms)[10:]]
    reacted = [v for p in pipelines for v in list(p.detect_latency_ms)[2:]]
    frames_n = sum(p.frames for p in pipelines)
    dropped = sum(p.dropped_frames for p in pipelines)
    calls = sum(p.scheduler.detections for p in pipelines)
    moving = sum(p.scheduler.frames_moving for p in pipelines)
    deferred = sum(p.scheduler.frames_deferred for p in pipelines)
    age = max(p.scheduler.detection_age_max_s for p in pipelines)
    print(
        f"{zones:5s}  {n:7d}  {'on' if gating else 'off':6s}  {frames_n / n / elapsed:10.2f}  {dropped:7d}  "
        f"{_pct(lat, 0.5):10.0f} / {_pct(lat, 0.95):5.0f}  {_pct(reacted, 0.5):14.0f} / "
        f"{_pct(reacted, 0.95):5.0f}  {age:13.1f}  {calls / elapsed:16.2f}  "
        f"{(moving / frames_n if gating and frames_n else float('nan')):12.2f}  {deferred:8d}  "
        f"{cores:9.2f}  {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    agent.buffer.close()


# Zones on the 1280x720 concourse (normalised): "busy" where people move in every frame (the
# standing group gestures, the walkway always has walkers), "quiet" where they seldom do.
BENCH_ZONES: dict[str, list[tuple[str, list[list[float]]]]] = {
    "busy": [
        ("group", [[0.12, 0.4], [0.3, 0.4], [0.3, 0.65], [0.12, 0.65]]),
        ("walk", [[0.45, 0.3], [0.7, 0.3], [0.7, 0.9], [0.45, 0.9]]),
    ],
    # The concourse test's zones (edge_agent.concourse.ZONES, pixels of the 1280x720 frame).
    "quiet": [("lone", []), ("empty", [])],
}  # fmt: skip


def _bench_station(station_id: str, name: str, zone: list[list[float]]) -> dict[str, object]:
    from edge_agent.concourse import ZONES

    if zone:
        return {"id": station_id, "zone": zone, "normalized": True, "anchor": "bottom"}
    return {"id": station_id, "zone": [list(p) for p in ZONES[name]]}


def _cameras_config(
    tmp: Path, clip: Path, n: int, zones: str = "busy", gating: bool = True
) -> dict[str, object]:
    """``n`` cameras on the 5 fps clip, looped in real time like live cameras (dropping frames
    when the detector falls behind), two stations each on the concourse floor."""
    cameras = []
    for i in range(n):
        cameras.append(
            {
                "id": f"cam-{i}",
                "source": str(clip),
                "sample_fps": 5,
                "loop": True,
                "realtime": True,
                "process_width": 640,
                "stations": [_bench_station(f"c{i}-{name}", name, zone) for name, zone in BENCH_ZONES[zones]],
            }
        )
    return {
        "site_id": "bench",
        "gateway_id": f"gw-{n}",
        "cameras": cameras,
        "detector": {
            "backend": "yolo",
            "model": "yolox-nano@bench",
            "models_dir": str(tmp / "models"),
            "product_labels": [],
            "gating": {"enabled": gating},
        },
        "mqtt": {"url": "mqtt://x@h"},
        "buffer": {"path": str(tmp / f"buffer-{n}-{zones}-{gating}.sqlite"), "synchronous": "NORMAL"},
        "health": {"enabled": True, "check_every_s": 10},
    }


def _acker(url: str, site: str, ready: mp.Event, stop: mp.Event) -> None:  # type: ignore[valid-type]
    """Acks like the collector: subscribe to event batches, publish CommitAck with their seq ranges."""
    import orjson

    from takt.contract import CommitAck, encode_ack, seq_ranges
    from takt.mqtt import MqttEndpoint, make_client

    endpoint = MqttEndpoint.from_url(url)
    client = make_client(endpoint, f"bench-acker-{uuid.uuid4().hex[:6]}")

    def on_message(c, u, m):  # type: ignore[no-untyped-def]
        doc = orjson.loads(m.payload)
        ack = CommitAck(
            gateway_id=doc["gateway_id"],
            seq_ranges=seq_ranges(e["seq"] for e in doc["events"]),
            committed_at=datetime.now(UTC),
        )
        gw = m.topic.split("/")[3]
        c.publish(f"takt/v1/{site}/{gw}/ack", encode_ack(ack), qos=1)

    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect(endpoint.host, endpoint.port)
    client.subscribe(f"takt/v1/{site}/+/events", qos=1)
    client.loop_start()
    stop.wait()
    client.loop_stop()


def bench_drain(n_events: int) -> None:
    from broker.passwords import generate_password
    from devstack import MosquittoServer
    from devstack.system import free_port
    from edge_agent.buffer import EventBuffer
    from edge_agent.publisher import Publisher, PublisherSettings
    from takt.contract import Event, EventType
    from takt.mqtt import MqttEndpoint

    with tempfile.TemporaryDirectory() as tmp:
        server = MosquittoServer(Path(tmp) / "mqtt", free_port())
        server.start()
        try:
            site, gw = "bench-site", "gw-bench"
            gw_url = server.add_gateway(site, gw, generate_password())
            col_url = server.add_collector("collector", generate_password())
            buf = EventBuffer(Path(tmp) / "buffer.sqlite", max_bytes=4 << 30)
            template = Event(
                event_id=uuid.uuid4(),
                timestamp=datetime(2026, 11, 23, 8, tzinfo=UTC),
                worker_id="w-1042",
                station_id="st-weld-1",
                event_type=EventType.WORKING,
                confidence=0.93,
                duration_s=10.0,
                model_version="person-yolo11n@2026.11.1",
                camera_id="cam-line1",
                site_id=site,
                gateway_id=gw,
                config_version="3f5c0a1b2c3d",
            )
            start = time.perf_counter()
            chunk = 20_000
            for first in range(0, n_events, chunk):
                buf.append(
                    [
                        template.model_copy(update={"event_id": uuid.uuid4()})
                        for _ in range(min(chunk, n_events - first))
                    ]
                )
            fill = time.perf_counter() - start
            print(
                f"buffer fill: {n_events:,} events in {fill:.1f} s "
                f"({n_events / fill:,.0f} events/s, {chunk:,} per transaction)"
            )
            ready, stop = mp.Event(), mp.Event()
            acker = mp.Process(target=_acker, args=(col_url, site, ready, stop), daemon=True)
            acker.start()
            ready.wait(30)
            settings = PublisherSettings(
                batch_max_events=2000,
                ack_timeout_s=60,
                max_inflight_batches=16,
                replay_max_events_per_s=1e9,
                heartbeat_s=5,
            )
            pub = Publisher(buf, MqttEndpoint.from_url(gw_url), site, gw, settings)
            start = time.perf_counter()
            pub.start()
            while buf.stats().backlog and time.perf_counter() - start < 600:
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            left = buf.stats().backlog
            pub.stop()
            stop.set()
            acker.join(10)
            print(
                f"replay drain into Mosquitto with commit acks: {n_events - left:,} events "
                f"in {elapsed:.1f} s "
                f"= {(n_events - left) / elapsed:,.0f} events/s (batches of 2,000, 16 in flight); "
                f"re-sent batches {pub.counters.batches_resent}"
            )
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["all", "motion", "latency", "yolo", "drain", "cameras"])
    parser.add_argument("--counts", default="1,2,4,8", help="cameras: camera counts to run")
    parser.add_argument("--seconds", type=float, default=40.0, help="cameras: seconds per run")
    parser.add_argument(
        "--zones", default="busy,quiet", help="cameras: zone sets to run (busy, quiet; see BENCH_ZONES)"
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--onnx")
    parser.add_argument("--pt")
    parser.add_argument("--imgsz", type=int, default=640)
    args = parser.parse_args()
    if args.what in ("all", "motion"):
        bench_motion()
    if args.what == "latency":
        bench_pipeline()
    if args.what == "yolo":
        bench_yolo(args.onnx, args.pt, args.imgsz)
    if args.what == "cameras":
        zone_sets = [z for z in args.zones.split(",") if z]
        bench_cameras([int(c) for c in args.counts.split(",") if c], args.seconds, zone_sets)
    if args.what in ("all", "drain"):
        bench_drain(args.events)


if __name__ == "__main__":
    main()
