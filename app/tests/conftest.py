"""Shared fixtures: an in-process app (no Ray) and error-shape assertions."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from salience.api import create_app
from salience.models import AppSettings

# Small limits so oversize/too-many cases are cheap to build.
SMALL = AppSettings(max_items=50, max_body_bytes=4096)


@pytest.fixture
def client() -> Iterator[TestClient]:
    """App with default settings."""
    with TestClient(create_app(AppSettings())) as test_client:
        yield test_client


@pytest.fixture
def small_client() -> Iterator[TestClient]:
    """App with tiny limits (50 items, 4 KiB bodies)."""
    with TestClient(create_app(SMALL)) as test_client:
        yield test_client


def assert_error(response: Any, status: int, *fragments: str) -> str:
    """Assert the error shape, the status, and that the message mentions every fragment."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"status", "error"}, body
    assert body["status"] == "error"
    assert isinstance(body["error"], str)
    assert body["error"]
    for fragment in fragments:
        assert fragment in body["error"], (fragment, body["error"])
    return body["error"]
