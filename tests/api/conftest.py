from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from takt.store.db import upgrade

ADMIN = "test-admin-token"
FIXED_DATES_MAX_AGE_DAYS = 36_500.0


@pytest.fixture
def api_db(fresh_database: str) -> str:
    upgrade(fresh_database)
    return fresh_database


@pytest.fixture
def settings(api_db: str) -> ApiSettings:
    # These tests post events at fixed past dates (their expected figures are
    # worked out for them): a plausibility window wide enough for them all.
    # tests/api/test_bad_input.py checks the default window.
    return ApiSettings(
        database_url=api_db,
        admin_token=ADMIN,
        refresh_interval_s=0,
        rate_limit_per_minute=100_000,
        max_event_age_days=FIXED_DATES_MAX_AGE_DAYS,
    )


@pytest.fixture
def client(settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c
