"""FastAPI application for the salience scoring service (no Ray imports here).

Routes
------
``POST /score/salience``
    ``{"features": [{"task_risk": x, "failure_severity": y}, ...]}`` ->
    ``{"scores": [...], "model": ..., "status": "success", "timestamp": ...}``.
``GET /healthz``
    Liveness/readiness for load balancers: 200 ``{"status": "ok", ...}`` after a
    scoring self-test, 503 (error shape) if the self-test fails.

Errors
------
Every error is ``{"status": "error", "error": "<what is wrong and where>"}``:

* 400 - body is not valid JSON (or not decodable), or a malformed Content-Length;
* 404 / 405 - unknown route / method not allowed (405 carries an ``Allow`` header);
* 413 - body larger than ``max_body_bytes``; decided from Content-Length before the
  body is read, or while streaming for chunked bodies (reading stops at the limit);
* 415 - Content-Type is missing or not JSON (``application/json`` or ``*/*+json``);
* 422 - schema violations, located like ``features[1].task_risk: ...``: missing or
  empty ``features``, unknown fields, non-numbers (bools/strings), NaN/Infinity,
  values outside [0, 1], and **more than ``max_items`` features** (422, not 413:
  the body fits the size limit, it is the content that is invalid).

Unexpected exceptions become a 500 in the same shape (never seen for bad input).
"""

# No `from __future__ import annotations` here: the scoring endpoint is annotated with
# a per-app request model held in a local variable, which FastAPI can only resolve if
# annotations are evaluated eagerly.

import json
import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope

from salience import __version__
from salience.body_limit import BodySizeLimitMiddleware
from salience.errors import add_error_handlers, error_response
from salience.models import (
    AppSettings,
    ErrorResponse,
    HealthResponse,
    ScoreRequest,
    ScoreResponse,
    request_model,
)
from salience.routing import FastJSONBodyRoute
from salience.scoring import score_features

SCORE_PATH = "/score/salience"
HEALTH_PATH = "/healthz"

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description}
    for code, description in {
        400: "Body is not valid JSON",
        413: "Body larger than max_body_bytes",
        415: "Content-Type is not JSON",
        422: "Invalid features (location named in the message), or too many items",
    }.items()
}


# -------------------------------------------------------------------- self test

_SELF_TEST_INPUT = {"features": [{"task_risk": 0.5, "failure_severity": 0.3}, {}]}
_SELF_TEST_EXPECTED = (0.15, 0.25)


def self_test() -> None:
    """Validate + score a known request; raise ``RuntimeError`` if anything is off."""
    try:
        request = ScoreRequest.model_validate(_SELF_TEST_INPUT)
        scores = score_features(request.features)
    except Exception as exc:  # pragma: no cover - only on a broken install
        raise RuntimeError(f"self-test failed: {type(exc).__name__}: {exc}") from exc
    if len(scores) != len(_SELF_TEST_EXPECTED) or any(
        abs(got - want) > 1e-9 for got, want in zip(scores, _SELF_TEST_EXPECTED, strict=True)
    ):
        raise RuntimeError(f"self-test failed: expected {_SELF_TEST_EXPECTED}, got {scores}")


async def asgi_post(
    app: ASGIApp,
    path: str,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    receive: Receive | None = None,
) -> tuple[int, bytes]:
    """POST ``body`` (JSON) to ``path`` of an ASGI app in-process; return status and body.

    ``headers`` are added after Content-Type (and Content-Length unless ``receive`` is
    given, which then supplies the body instead)."""
    length = [] if receive is not None else [(b"content-length", str(len(body)).encode())]
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *length, *headers],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    request_sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive_body() -> Message:
        nonlocal request_sent
        if request_sent:
            return {"type": "http.disconnect"}
        request_sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive or receive_body, send)
    return status, b"".join(chunks)


async def probe_app(app: ASGIApp, path: str = SCORE_PATH) -> None:
    """Send the self-test request through a full ASGI app (middleware, routing,
    validation, scoring, serialisation) in-process; raise ``RuntimeError`` unless
    the expected scores come back. Used by the Ray Serve replica health check."""
    status, raw = await asgi_post(app, path, json.dumps(_SELF_TEST_INPUT).encode())
    try:
        scores = json.loads(raw)["scores"] if status == 200 else None
    except (ValueError, KeyError, TypeError):
        scores = None
    if not isinstance(scores, list) or len(scores) != len(_SELF_TEST_EXPECTED):
        raise RuntimeError(f"probe of POST {path} failed: HTTP {status}: {raw[:200]!r}")
    if any(abs(got - want) > 1e-9 for got, want in zip(scores, _SELF_TEST_EXPECTED, strict=True)):
        raise RuntimeError(f"probe of POST {path}: expected {_SELF_TEST_EXPECTED}, got {scores}")


# ---------------------------------------------------------------------- the app


def create_app(settings: AppSettings | None = None) -> FastAPI:
    """Build the FastAPI app for ``settings`` (defaults if omitted)."""
    settings = settings or AppSettings()
    request_cls = request_model(settings.max_items)
    model_name = settings.model_name

    app = FastAPI(
        title="Salience scoring service",
        version=__version__,
        description=(
            "Scores items as task_risk x failure_severity. Every error response is "
            '`{"status": "error", "error": "<what is wrong and where>"}`.'
        ),
    )
    app.state.settings = settings
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    add_error_handlers(app)

    scoring_router = APIRouter(route_class=FastJSONBodyRoute)

    @scoring_router.post(
        SCORE_PATH,
        response_model=ScoreResponse,
        responses=_ERROR_RESPONSES,
        summary="Score a batch of items",
        operation_id="score_salience",
    )
    async def score_salience(payload: request_cls) -> JSONResponse:  # type: ignore[valid-type]
        # Returning a Response skips FastAPI's response re-validation (10k floats).
        scores = score_features(payload.features)
        return JSONResponse(
            {
                "scores": scores,
                "model": model_name,
                "status": "success",
                "timestamp": time.time(),
            }
        )

    app.include_router(scoring_router)

    @app.get(
        HEALTH_PATH,
        response_model=HealthResponse,
        responses={503: {"model": ErrorResponse, "description": "Self-test failed"}},
        summary="Health check for load balancers",
        operation_id="healthz",
    )
    async def healthz() -> JSONResponse:
        try:
            self_test()
        except RuntimeError as exc:
            return error_response(503, str(exc))
        return JSONResponse({"status": "ok", "model": model_name, "version": __version__})

    return app


__all__ = [
    "HEALTH_PATH",
    "SCORE_PATH",
    "create_app",
    "probe_app",
    "self_test",
]
