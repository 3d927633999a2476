"""Property-based fuzzing, in-process (ASGI, no network, no Ray).

* schemathesis generates positive and negative cases from the app's OpenAPI document;
* hypothesis throws raw bytes and arbitrary JSON (incl. NaN/Infinity literals);
* the app (pydantic's JSON parser) must answer exactly like FastAPI's own json.loads +
  validation, for random bodies and for valid-looking ones with odd number literals.

Whatever comes in, the app must never answer 5xx and every non-2xx answer must have
the ``{"status": "error", "error": ...}`` shape.
"""

import json
from typing import Any
from unittest import mock

import pytest

schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from salience.api import create_app  # noqa: E402
from salience.models import SCORE_PATH, AppSettings  # noqa: E402
from salience.routing import JSONBodyRoute  # noqa: E402

# Small limits so generated inputs regularly cross them.
SETTINGS = AppSettings(max_items=5, max_body_bytes=16_384)
APP = create_app(SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
client = TestClient(APP)
with mock.patch("salience.api.FastJSONBodyRoute", JSONBodyRoute):
    reference_client = TestClient(create_app(SETTINGS))  # FastAPI's json.loads + validation

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


# JSON numbers: mostly within [0, 1] (long mantissas, exponents, -0), some anywhere.
UNIT = st.from_regex(r"-?0(\.[0-9]{1,40})?([eE]-?[0-9]{1,3})?|1(\.0{1,20})?", fullmatch=True)
NUMBER = st.from_regex(
    r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,40})?([eE][-+]?[0-9]{1,3})?", fullmatch=True
)
LITERAL = st.one_of(
    UNIT,
    st.floats(0, 1).map(repr),
    NUMBER,
    st.sampled_from(["NaN", "Infinity", "-Infinity", "true", "null", '"0.5"', "{}"]),
)
ITEM = st.lists(
    st.tuples(st.sampled_from(["task_risk", "failure_severity", "bogus"]), LITERAL), max_size=4
).map(lambda pairs: "{" + ", ".join(f'"{key}": {value}' for key, value in pairs) + "}")
NEAR_VALID = st.lists(ITEM, min_size=0, max_size=7).map(
    lambda items: '{"features": [' + ", ".join(items) + "]}"
)


def same_answer(body: bytes | str) -> None:
    headers = {"content-type": "application/json"}
    got = client.post(SCORE_PATH, content=body, headers=headers)
    want = reference_client.post(SCORE_PATH, content=body, headers=headers)
    assert got.status_code == want.status_code, (got.text, want.text)
    if got.status_code == 200:  # identical but for the timestamp
        assert got.json()["scores"] == want.json()["scores"]
        assert got.content.split(b'"timestamp"')[0] == want.content.split(b'"timestamp"')[0]
    else:
        assert got.content == want.content


@settings(max_examples=300, deadline=None)
@given(body=NEAR_VALID)
def test_same_answers_as_fastapi_parsing_near_valid(body: str) -> None:
    same_answer(body)


@settings(max_examples=200, deadline=None)
@given(payload=JSON_VALUES)
def test_same_answers_as_fastapi_parsing_any_json(payload: Any) -> None:
    same_answer(json.dumps(payload))


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=256))
def test_same_answers_as_fastapi_parsing_any_bytes(body: bytes) -> None:
    same_answer(body)
