"""Pydantic v2 models: request/response bodies and the application settings, and the
URL paths the bodies go to.

Validation is deliberately strict: scores must be computed from real numbers, so
booleans and numeric strings are rejected instead of being silently coerced, and
NaN/Infinity (which Python's ``json`` module happily parses) are refused.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

# The service's URL paths: the scoring endpoint takes a ScoreRequest and answers a
# ScoreResponse; the health endpoint answers a HealthResponse. Kept here, with the bodies,
# so the routes (salience.api) and the probe (salience.probe) share them.
SCORE_PATH = "/score/salience"
HEALTH_PATH = "/healthz"

DEFAULT_MODEL_NAME = "salience_scorer"
DEFAULT_MAX_ITEMS = 10_000
# ~75 bytes per item even with full-precision floats -> 10,000 items is < 1 MiB.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024

# A probability-like input: finite, within [0, 1]. ``strict`` keeps ints (1 -> 1.0)
# but rejects bools and strings.
UnitFloat = Annotated[
    float,
    Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False),
]


class FeatureItem(BaseModel):
    """One item to score. Missing values default to 0.5 (maximum uncertainty)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_risk: UnitFloat = Field(default=0.5, description="Risk of the task, in [0, 1].")
    failure_severity: UnitFloat = Field(
        default=0.5, description="Severity of a failure, in [0, 1]."
    )


class ScoreRequest(BaseModel):
    """Body of ``POST /score/salience``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"features": [{"task_risk": 0.5, "failure_severity": 0.3}]}]
        },
    )

    features: list[FeatureItem] = Field(min_length=1, description="Items to score.")


def request_model(max_items: int) -> type[ScoreRequest]:
    """Return a ``ScoreRequest`` variant enforcing ``max_items`` (and advertising it
    as ``maxItems`` in the OpenAPI document)."""
    return create_model(
        "ScoreRequest",
        __base__=ScoreRequest,
        __module__=__name__,
        features=(
            list[FeatureItem],
            Field(min_length=1, max_length=max_items, description="Items to score."),
        ),
    )


class ScoreResponse(BaseModel):
    """Successful scoring response (same shape as the original seed service)."""

    scores: list[float]
    model: str = DEFAULT_MODEL_NAME
    status: Literal["success"] = "success"
    timestamp: float = Field(description="Unix time at which the scores were computed.")


class ErrorResponse(BaseModel):
    """Body of every error response (4xx, and the 500 fallback)."""

    status: Literal["error"] = "error"
    error: str = Field(description="What is wrong and where, e.g. 'features[1].task_risk: ...'.")


# Body of a 200 from ``GET /healthz``. No docstring on purpose: pydantic would publish it as
# the schema's description in /openapi.json, which would change what clients see.
class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    version: str


class AppSettings(BaseModel):
    """Application settings; in Ray Serve these are the application's ``args:``.

    Unknown keys are rejected so that a typo in the rendered Serve config fails the
    deploy instead of being silently ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_items: int = Field(
        default=DEFAULT_MAX_ITEMS, ge=1, description="Maximum number of features per request."
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        description="Maximum request body size in bytes; larger bodies get 413.",
    )
    model_name: str = Field(
        default=DEFAULT_MODEL_NAME,
        min_length=1,
        description="Value of the 'model' field in responses.",
    )


# The name the task brief uses; both refer to the same model.
Settings = AppSettings
