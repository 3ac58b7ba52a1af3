from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from collector.db import upgrade

ADMIN = "test-admin-token"


@pytest.fixture
def api_db(fresh_database: str) -> str:
    upgrade(fresh_database)
    return fresh_database


@pytest.fixture
def settings(api_db: str) -> ApiSettings:
    return ApiSettings(
        database_url=api_db, admin_token=ADMIN, refresh_interval_s=0, rate_limit_per_minute=100_000
    )


@pytest.fixture
def client(settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c
