"""Schemathesis against the OpenAPI schema, on the ASGI app: no input makes it answer 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from api.app import create_app
from api.settings import ApiSettings
from takt.store.db import upgrade
from tests.api.conftest import ADMIN


@pytest.fixture(scope="module")
def app_client(postgres_server: object, mosquitto_server: object) -> Iterator[TestClient]:
    dsn = postgres_server.create_database("schemathesis_api")  # type: ignore[attr-defined]
    upgrade(dsn)
    mqtt = f"mqtt://127.0.0.1:{mosquitto_server.port}"  # type: ignore[attr-defined]
    app = create_app(
        ApiSettings(
            database_url=dsn,
            admin_token=ADMIN,
            refresh_interval_s=0,
            rate_limit_per_minute=10**9,
            mqtt_url=mqtt,
        )
    )
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        client.post("/api/v1/seed")
        yield client


def test_no_server_errors(app_client: TestClient) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app_client.app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")

        check()
    assert operations >= 15
    assert failures == []
