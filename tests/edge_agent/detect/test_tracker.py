from __future__ import annotations

from edge_agent.detect.base import Detection, iou
from edge_agent.detect.tracker import CentroidTracker


def box(x: float, y: float, size: float = 10, label: str = "product") -> Detection:
    return Detection(label, 0.8, (x, y, x + size, y + size))


def test_track_is_confirmed_after_min_hits_and_keeps_its_id() -> None:
    tracker = CentroidTracker(max_distance=30, min_hits=2)
    assert tracker.update([box(0, 0)])[0].track_id is None
    first = tracker.update([box(10, 0)])[0].track_id
    assert first is not None
    assert tracker.update([box(20, 0)])[0].track_id == first


def test_two_objects_side_by_side_keep_separate_ids() -> None:
    tracker = CentroidTracker(max_distance=30, min_hits=1)
    ids = [d.track_id for d in tracker.update([box(0, 0), box(0, 50)])]
    moved = [d.track_id for d in tracker.update([box(8, 50), box(8, 0)])]
    assert len(set(ids)) == 2
    assert moved == [ids[1], ids[0]]


def test_lost_track_is_dropped_after_max_missed() -> None:
    tracker = CentroidTracker(min_hits=1, max_missed=2)
    tracker.update([box(0, 0)])
    for _ in range(3):
        tracker.update([])
    assert tracker.active == 0


def test_labels_do_not_match_each_other() -> None:
    tracker = CentroidTracker(min_hits=1)
    a = tracker.update([box(0, 0, label="person")])[0].track_id
    b = tracker.update([box(0, 0, label="product")])[0].track_id
    assert a != b


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 15, 10)) - 1 / 3) < 1e-9
