"""Property-based fuzzing, in-process (ASGI, no network, no Ray).

* schemathesis generates positive and negative cases from the app's OpenAPI document;
* hypothesis throws raw bytes and arbitrary JSON (incl. NaN/Infinity literals).

Whatever comes in, the app must never answer 5xx and every non-2xx answer must have
the ``{"status": "error", "error": ...}`` shape.
"""

import json
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from salience.api import SCORE_PATH, create_app  # noqa: E402
from salience.models import AppSettings  # noqa: E402

# Small limits so generated inputs regularly cross them.
APP = create_app(AppSettings(max_items=5, max_body_bytes=16_384))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
client = TestClient(APP)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(
            st.sampled_from(["features", "task_risk", "failure_severity"]) | st.text(max_size=5),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def assert_error_shape(response: Any) -> None:
    if response.status_code < 400:
        return
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"status", "error"}, body
    assert body["status"] == "error"
    assert isinstance(body["error"], str)
    assert body["error"]


@schema.parametrize()
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_openapi_fuzz(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (response.status_code, response.text)
    assert_error_shape(response)
    # Built-in checks: no 5xx, documented status codes/content types/schemas, Allow
    # header on 405, negative data rejected, positive data accepted.
    case.validate_response(response)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=512), content_type=st.sampled_from(["application/json", None]))
def test_raw_bytes_never_5xx(body: bytes, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(SCORE_PATH, content=body, headers=headers)
    assert response.status_code < 500
    assert_error_shape(response)


@settings(max_examples=200, deadline=None)
@given(payload=JSON_VALUES)
def test_arbitrary_json_never_5xx(payload: Any) -> None:
    response = client.post(
        SCORE_PATH,
        content=json.dumps(payload),  # allow_nan=True: may emit NaN/Infinity literals
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (200, 422), response.text
    assert_error_shape(response)
