"""HTTP behaviour of the FastAPI app, in-process (no Ray)."""

import asyncio
import json
import time
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

import salience.api
from conftest import SMALL, assert_error
from salience.api import create_app
from salience.models import HEALTH_PATH, SCORE_PATH, AppSettings
from salience.probe import asgi_post, probe_app
from salience.routing import JSONBodyRoute

JSON = {"content-type": "application/json"}


def post_raw(client: TestClient, body: bytes | str, headers: dict[str, str] | None = None) -> Any:
    return client.post(SCORE_PATH, content=body, headers=JSON if headers is None else headers)


# ------------------------------------------------------------------ happy paths


def test_scores_product(client: TestClient) -> None:
    before = time.time()
    response = client.post(
        SCORE_PATH, json={"features": [{"task_risk": 0.5, "failure_severity": 0.3}]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"scores", "model", "status", "timestamp"}
    assert body["scores"] == [pytest.approx(0.15)]
    assert body["model"] == "salience_scorer"
    assert body["status"] == "success"
    assert before <= body["timestamp"] <= time.time()


def test_missing_values_default_to_half(client: TestClient) -> None:
    response = client.post(
        SCORE_PATH, json={"features": [{}, {"task_risk": 1}, {"failure_severity": 0.2}]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["scores"] == pytest.approx([0.25, 0.5, 0.1])


def test_integers_and_bounds_are_accepted(client: TestClient) -> None:
    response = client.post(
        SCORE_PATH,
        json={"features": [{"task_risk": 0, "failure_severity": 1}, {"task_risk": 1.0}]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["scores"] == pytest.approx([0.0, 0.5])


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/x+json"]
)
def test_json_content_type_variants(client: TestClient, content_type: str) -> None:
    response = post_raw(client, '{"features": [{}]}', {"content-type": content_type})
    assert response.status_code == 200, response.text


def test_model_name_setting() -> None:
    with TestClient(create_app(AppSettings(model_name="other"))) as test_client:
        response = test_client.post(SCORE_PATH, json={"features": [{}]})
        assert response.json()["model"] == "other"
        assert test_client.get(HEALTH_PATH).json()["model"] == "other"


def test_ten_thousand_items_fit_default_limits(client: TestClient) -> None:
    features = [{"task_risk": 0.123456789012345, "failure_severity": 0.987654321098765}] * 10_000
    body = json.dumps({"features": features})
    assert len(body) > 500_000  # realistic full-precision payload
    response = post_raw(client, body)
    assert response.status_code == 200, response.text
    scores = response.json()["scores"]
    assert len(scores) == 10_000
    assert scores[-1] == pytest.approx(0.123456789012345 * 0.987654321098765)


# -------------------------------------------------------------- validation: 422


@pytest.mark.parametrize(
    ("payload", "fragments"),
    [
        pytest.param(
            {"features": [{}, {"task_risk": 1.5}]},
            ["features[1].task_risk: Input should be less than or equal to 1"],
            id="above-1",
        ),
        pytest.param(
            {"features": [{"failure_severity": -0.1}]},
            ["features[0].failure_severity: Input should be greater than or equal to 0"],
            id="below-0",
        ),
        pytest.param(
            {"features": [{"task_risk": True}]},
            ["features[0].task_risk: Input should be a valid number"],
            id="bool",
        ),
        pytest.param(
            {"features": [{"failure_severity": "0.5"}]},
            ["features[0].failure_severity: Input should be a valid number"],
            id="numeric-string",
        ),
        pytest.param(
            {"features": [{"task_risk": None}]},
            ["features[0].task_risk: Input should be a valid number"],
            id="null",
        ),
        pytest.param(
            {"features": [{"task_risk": 0.5, "bogus": 1}]},
            ["features[0].bogus: Extra inputs are not permitted"],
            id="unknown-item-field",
        ),
        pytest.param(
            {"features": [{}], "bogus": 1},
            ["bogus: Extra inputs are not permitted"],
            id="unknown-top-level-field",
        ),
        pytest.param({}, ["features: Field required"], id="features-missing"),
        pytest.param(
            {"features": []}, ["features: List should have at least 1 item"], id="features-empty"
        ),
        pytest.param(
            {"features": {"task_risk": 0.5}}, ["features: Input should be a valid list"], id="dict"
        ),
        pytest.param({"features": [0.5]}, ["features[0]: "], id="item-not-object"),
        pytest.param([{"features": [{}]}], ["body: "], id="body-is-array"),
        pytest.param("features", ["body: "], id="body-is-string"),
    ],
)
def test_invalid_payloads_are_422_with_location(
    client: TestClient, payload: Any, fragments: list[str]
) -> None:
    assert_error(client.post(SCORE_PATH, json=payload), 422, *fragments)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_422(client: TestClient, literal: str) -> None:
    body = '{"features": [{"task_risk": 0.5}, {"failure_severity": ' + literal + "}]}"
    assert_error(post_raw(client, body), 422, "features[1].failure_severity", "finite number")


def test_every_error_is_reported_but_capped(client: TestClient) -> None:
    message = assert_error(client.post(SCORE_PATH, json={"features": [{"task_risk": 2}] * 8}), 422)
    assert "features[0].task_risk" in message
    assert "features[4].task_risk" in message
    assert "features[5].task_risk" not in message
    assert "and 3 more error(s)" in message


def test_empty_body_is_422(client: TestClient) -> None:
    assert_error(post_raw(client, b""), 422, "body: Field required")


def test_too_many_items_is_422(small_client: TestClient) -> None:
    ok = small_client.post(SCORE_PATH, json={"features": [{}] * SMALL.max_items})
    assert ok.status_code == 200
    assert_error(
        small_client.post(SCORE_PATH, json={"features": [{}] * (SMALL.max_items + 1)}),
        422,
        "features: List should have at most 50 items",
    )


def test_default_max_items_is_10000(client: TestClient) -> None:
    assert_error(
        client.post(SCORE_PATH, json={"features": [{}] * 10_001}),
        422,
        "features: List should have at most 10000 items",
    )


# ------------------------------------------------------------- malformed: 4xx


@pytest.mark.parametrize(
    "body",
    [b'{"features": [', b"not json", b'{"features": [{}]', b"\xff\xfe\x00", b"[" * 5000],
    ids=["truncated", "garbage", "unclosed", "bad-encoding", "too-deep"],
)
def test_invalid_json_is_400(client: TestClient, body: bytes) -> None:
    assert_error(post_raw(client, body), 400, "body: ")


def test_invalid_json_message_has_position(client: TestClient) -> None:
    assert_error(post_raw(client, b'{"features": ['), 400, "invalid JSON at position 14")


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"content-type": "text/plain"}, "got 'text/plain'"),
        ({"content-type": "application/x-www-form-urlencoded"}, "got 'application/x-www-form"),
        ({}, "no Content-Type header"),
    ],
)
def test_non_json_content_type_is_415(
    client: TestClient, headers: dict[str, str], fragment: str
) -> None:
    assert_error(post_raw(client, b'{"features": [{}]}', headers), 415, fragment)


# ------------------------------------------- parsing corner cases (pinned behaviour)
# The body is validated by pydantic's JSON parser, falling back to FastAPI's
# json.loads + validation for anything it refuses; these pin what json.loads-based
# parsing always did where the two parsers differ.


def test_duplicate_keys_last_one_wins(client: TestClient) -> None:
    body = '{"features": [{"task_risk": 2, "task_risk": 0.1}], "features": [{"task_risk": 0.3}]}'
    response = post_raw(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["scores"] == [pytest.approx(0.15)]
    body = '{"features": [{"task_risk": 0.1, "task_risk": 2}]}'
    assert_error(post_raw(client, body), 422, "features[0].task_risk: Input should be less")


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda text: b"\xef\xbb\xbf" + text.encode(), id="utf-8-bom"),
        pytest.param(lambda text: text.encode("utf-16"), id="utf-16"),
        pytest.param(lambda text: text.encode("utf-32-le"), id="utf-32-le"),
    ],
)
def test_bom_and_utf16_32_bodies_are_accepted(client: TestClient, encode: Any) -> None:
    response = post_raw(client, encode('{"features": [{"task_risk": 0.25}]}'))
    assert response.status_code == 200, response.text
    assert response.json()["scores"] == [0.125]


def test_number_forms(client: TestClient) -> None:
    body = (
        '{"features": [{"task_risk": 1, "failure_severity": 1}, {"task_risk": -0.0},'
        ' {"task_risk": -0}, {"task_risk": 1e-400}, {"task_risk": 0.1e1},'
        ' {"task_risk": 1.00000000000000000001}]}'
    )
    response = post_raw(client, body)
    assert response.status_code == 200, response.text
    assert b'"scores":[1.0,-0.0,0.0,0.0,0.5,0.5]' in response.content


def test_huge_integer_is_422_not_a_number(client: TestClient) -> None:
    body = '{"features": [{"task_risk": 1' + "0" * 400 + "}]}"
    assert_error(
        post_raw(client, body), 422, "features[0].task_risk: Input should be a valid number"
    )


def test_lone_surrogate_key_is_422(client: TestClient) -> None:
    assert_error(
        post_raw(client, b'{"features": [{"\\ud800": 1}]}'),
        422,
        "features[0]: Input should be a valid string, unable to parse raw data as a unicode string",
    )


def test_invalid_utf8_is_400(client: TestClient) -> None:
    assert_error(post_raw(client, b'{"\xff": 1}'), 400, "body: could not be parsed as JSON")


def test_invalid_json_position_counts_characters(client: TestClient) -> None:
    # json.loads positions are in decoded characters, not bytes ("é" is 2 bytes).
    assert_error(post_raw(client, '{"é": ['.encode()), 400, "invalid JSON at position 7: ")


def test_json_content_type_fastapi_does_not_parse_is_422(client: TestClient) -> None:
    # Passes the 415 check, but FastAPI's media-type parser does not take it for JSON
    # and validates the raw bytes.
    response = post_raw(client, b'{"features": [{}]}', {"content-type": "application/x/y+json"})
    assert_error(response, 422, "body: Input should be a valid dictionary")


def test_valid_bodies_skip_json_loads(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid bodies are validated by pydantic's JSON parser, never by json.loads; the
    others still go through FastAPI's json.loads-based parsing and errors."""
    calls = 0
    original = Request.json

    async def counting_json(self: Request) -> Any:
        nonlocal calls
        calls += 1
        return await original(self)

    monkeypatch.setattr(Request, "json", counting_json)
    response = client.post(SCORE_PATH, json={"features": [{"task_risk": 0.5}] * 1000})
    assert response.status_code == 200, response.text
    assert response.json()["scores"] == [0.25] * 1000
    assert calls == 0
    assert_error(client.post(SCORE_PATH, json={"features": [{"task_risk": 2}]}), 422)
    assert calls == 1
    # ... while the reference app of the comparisons below parses every body itself.
    reference = _reference_client(monkeypatch, AppSettings())
    assert reference.post(SCORE_PATH, json={"features": [{}]}).status_code == 200
    assert calls == 2


def _reference_client(monkeypatch: pytest.MonkeyPatch, settings: AppSettings) -> TestClient:
    """The app with FastAPI's own json.loads + validation."""
    with monkeypatch.context() as patch:
        patch.setattr(salience.api, "FastJSONBodyRoute", JSONBodyRoute)
        return TestClient(create_app(settings))


def _comparable(response: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    content = response.content
    if response.status_code == 200:  # the timestamp is the only difference allowed
        body = response.json()
        body["timestamp"] = 0
        content = json.dumps(body).encode()
    headers = sorted((k, v) for k, v in response.headers.items() if k != "content-length")
    return response.status_code, content, headers


SAME_AS_FASTAPI_BODIES = [
    b"",
    b" ",
    b"null",
    b"[]",
    b'{"features": [{"task_risk": NaN}]}',
    b'{"features": [{"task_risk": 1e400}]}',
    b'{"features": [{"task_risk": 1' + b"0" * 5000 + b"}]}",
    b'{"features": [{"task_risk": 0.' + b"1" * 5000 + b"}]}",
    b'{"features": [{"task_risk": "\\ud800"}]}',
    b'{"\\ud800": 1}',
    b'{"feat\\u0075res": [{}]}',
    b'{"features": [{}]}\x0c',
    b'{"features": [{}]}\x00',
    b'{"features": [{"a\x01": 1}]}',
    b"\xef\xbb\xbf\xef\xbb\xbf{}",
    b"[" * 300,
    b'{"features": [' + b"[" * 300 + b"]" * 300 + b"]}",
    b'{"features": [{}, 1, null, [], "x", {"task_risk": {}}]}',
    b'{"FEATURES": [{}], "features": []}',
    b'{"features": [{"task_risk": 0.5}], "features": null}',
]


@pytest.mark.parametrize("body", SAME_AS_FASTAPI_BODIES)
@pytest.mark.parametrize("content_type", ["application/json", "application/x/y+json"])
def test_same_answers_as_fastapi_parsing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, body: bytes, content_type: str
) -> None:
    reference = _reference_client(monkeypatch, AppSettings())
    headers = {"content-type": content_type}
    assert _comparable(post_raw(client, body, headers)) == _comparable(
        post_raw(reference, body, headers)
    )


# ------------------------------------------------------------------- body size


def test_oversize_body_is_413(small_client: TestClient) -> None:
    body = json.dumps({"features": [{"task_risk": 0.5, "failure_severity": 0.5}] * 100})
    assert len(body) > SMALL.max_body_bytes
    assert_error(post_raw(small_client, body), 413, "exceeds 4096 bytes")


def test_oversize_chunked_body_is_413(small_client: TestClient) -> None:
    def chunks():  # no Content-Length -> Transfer-Encoding: chunked
        yield b'{"features": ['
        for _ in range(400):  # ~7.6 KB in total
            yield b'{"task_risk": 0.5},'

    response = small_client.post(SCORE_PATH, content=chunks(), headers=JSON)
    assert_error(response, 413, "exceeds 4096 bytes")


def test_default_body_limit_is_2_mib(client: TestClient) -> None:
    assert_error(post_raw(client, b" " * (2 * 1024 * 1024 + 1)), 413, "exceeds 2097152 bytes")


class _Receiver:
    """ASGI receive() yielding endless 1 KiB chunks, counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"type": "http.request", "body": b" " * 1024, "more_body": True}


def _call_asgi(app: Any, headers: list[tuple[bytes, bytes]], receive: Any) -> tuple[int, dict]:
    status, body = asyncio.run(asgi_post(app, SCORE_PATH, b"", headers, receive=receive))
    return status, json.loads(body)


def test_declared_oversize_is_rejected_without_reading_body() -> None:
    receive = _Receiver()
    status, body = _call_asgi(create_app(SMALL), [(b"content-length", b"1000000000")], receive)
    assert status == 413
    assert body["status"] == "error"
    assert receive.calls == 0


def test_streamed_body_reading_stops_at_limit() -> None:
    receive = _Receiver()  # never ends: the limit is the only way out
    status, body = _call_asgi(create_app(SMALL), [], receive)
    assert status == 413
    assert body == {"status": "error", "error": "body: request body exceeds 4096 bytes"}
    assert receive.calls == SMALL.max_body_bytes // 1024 + 1


def test_malformed_content_length_is_400() -> None:
    status, body = _call_asgi(create_app(SMALL), [(b"content-length", b"abc")], _Receiver())
    assert status == 400
    assert "Content-Length" in body["error"]


# --------------------------------------------------------- health and routing


def test_healthz(client: TestClient) -> None:
    response = client.get(HEALTH_PATH)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "salience_scorer", "version": "0.1.0"}


def test_unknown_route_is_404_json(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "GET /nope")
    assert_error(client.post("/score/other", json={}), 404, "/score/other")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", SCORE_PATH, "POST"), ("PUT", SCORE_PATH, "POST"), ("POST", HEALTH_PATH, "GET")],
)
def test_wrong_method_is_405_json(client: TestClient, method: str, path: str, allowed: str) -> None:
    response = client.request(method, path)
    assert_error(response, 405, f"method {method} not allowed for {path}")
    assert allowed in response.headers["allow"]


def test_openapi_documents_error_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    responses = spec["paths"][SCORE_PATH]["post"]["responses"]
    for code in ("400", "413", "415", "422"):
        ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    features = spec["components"]["schemas"]["ScoreRequest"]["properties"]["features"]
    assert features["maxItems"] == 10_000
    assert features["minItems"] == 1


# -------------------------------------------------------------------- probing


def test_probe_app_passes_on_real_app() -> None:
    asyncio.run(probe_app(create_app()))


def test_probe_app_detects_broken_app() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"boom"})

    with pytest.raises(RuntimeError, match="HTTP 500"):
        asyncio.run(probe_app(broken))


def test_asgi_module_app() -> None:
    from salience.asgi import app

    with TestClient(app) as test_client:
        response = test_client.post(SCORE_PATH, json={"features": [{}]})
        assert response.json()["scores"] == [0.25]
