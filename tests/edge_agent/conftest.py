from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from takt.contract import Event, EventType
from tests.edge_agent.acker import StandInAcker


def make_event(i: int, station: str = "st-1") -> Event:
    return Event(
        event_id=uuid.uuid4(),
        timestamp=datetime(2026, 11, 23, 8, 0, tzinfo=UTC) + timedelta(seconds=i),
        worker_id="w-1",
        station_id=station,
        event_type=EventType.WORKING,
        confidence=0.9,
        duration_s=1.0,
        model_version="motion@1",
        camera_id="cam-1",
        config_version="abc123",
    )


@pytest.fixture
def events() -> Callable[[int], list[Event]]:
    return lambda n: [make_event(i) for i in range(n)]


@pytest.fixture
def acker_factory(collector_user_url: Callable[[str], str]) -> Iterator[Callable[..., StandInAcker]]:
    made: list[StandInAcker] = []

    def make(site_id: str, **kwargs: object) -> StandInAcker:
        # A broker user of its own: the user name is the client id, so two
        # clients of one user would take each other's place.
        url = collector_user_url(f"acker-{uuid.uuid4().hex[:8]}")
        acker = StandInAcker(url, site_id, **kwargs)  # type: ignore[arg-type]
        made.append(acker)
        return acker

    yield make
    for acker in made:
        acker.close()


@pytest.fixture(scope="session")
def demo_footage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 90 s synthetic clip and its ground truth, rendered once per session."""
    from edge_agent.synthetic import render

    return render(tmp_path_factory.mktemp("footage"), seed=7, duration_s=90)
