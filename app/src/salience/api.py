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
Every error is ``{"status": "error", "error": "<what is wrong and where>"}``
(:mod:`salience.errors`):

* 400 - body is not valid JSON (or not decodable) (:mod:`salience.errors`), or a
  malformed Content-Length (:mod:`salience.body_limit`);
* 404 / 405 - unknown route / method not allowed (405 carries an ``Allow`` header);
* 413 - body larger than ``max_body_bytes``; decided from Content-Length before the
  body is read, or while streaming for chunked bodies (reading stops at the limit)
  (:mod:`salience.body_limit`);
* 415 - Content-Type is missing or not JSON (``application/json`` or ``*/*+json``)
  (:mod:`salience.routing`);
* 422 - schema violations, located like ``features[1].task_risk: ...``: missing or
  empty ``features``, unknown fields, non-numbers (bools/strings), NaN/Infinity,
  values outside [0, 1] (:mod:`salience.models`), and **more than ``max_items``
  features** (422, not 413: the body fits the size limit, it is the content that is
  invalid).

Unexpected exceptions become a 500 in the same shape (never seen for bad input).

This module puts the pieces together: the routes, and :func:`create_app`. The paths are
:data:`salience.models.SCORE_PATH` and :data:`salience.models.HEALTH_PATH`; the known
request of the health check is in :mod:`salience.probe`.
"""

# No `from __future__ import annotations` here: the scoring endpoint is annotated with
# a per-app request model held in a local variable, which FastAPI can only resolve if
# annotations are evaluated eagerly.

import time
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from salience import __version__
from salience.body_limit import BodySizeLimitMiddleware
from salience.errors import add_error_handlers, error_response
from salience.models import (
    HEALTH_PATH,
    SCORE_PATH,
    AppSettings,
    ErrorResponse,
    HealthResponse,
    ScoreResponse,
    request_model,
)
from salience.probe import self_test
from salience.routing import FastJSONBodyRoute
from salience.scoring import score_features

# The error answers of the scoring route, as documented in the OpenAPI document.
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description}
    for code, description in {
        400: "Body is not valid JSON",
        413: "Body larger than max_body_bytes",
        415: "Content-Type is not JSON",
        422: "Invalid features (location named in the message), or too many items",
    }.items()
}


def create_app(settings: AppSettings | None = None) -> FastAPI:
    """Build the FastAPI app for ``settings``.

    Args:
        settings: ``max_items`` (features per request, default 10000), ``max_body_bytes``
            (default 2097152, i.e. 2 MiB) and ``model_name`` (default
            ``"salience_scorer"``); see :class:`salience.models.AppSettings`. None means
            all defaults.

    Returns:
        The app, with the body size limit (:class:`salience.body_limit.BodySizeLimitMiddleware`),
        the error handlers (:func:`salience.errors.add_error_handlers`), ``POST
        /score/salience`` (route class :class:`salience.routing.FastJSONBodyRoute`) and
        ``GET /healthz`` (:func:`salience.probe.self_test`); ``settings`` is kept in
        ``app.state.settings``.
    """
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


__all__ = ["create_app"]
