"""Self-tests: a known request with known scores, checked in-process.

* :func:`self_test` validates and scores it without HTTP; ``GET /healthz`` answers 503 if
  it fails (:func:`salience.api.create_app`).
* :func:`probe_app` posts it through a whole ASGI app (middleware, routing, validation,
  scoring, serialisation) without a network; the Ray Serve replica's ``check_health``
  calls it (:mod:`salience.deployment`).
* :func:`asgi_post` is the in-process POST both the probe and the tests and benchmarks use.

No Ray imports here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope

from salience.models import SCORE_PATH, ScoreRequest
from salience.scoring import score_features

# The known request: one item with both features given, one relying on the defaults of
# FeatureItem (0.5 each), so a change of either the product or the defaults shows.
SELF_TEST_INPUT: dict[str, Any] = {"features": [{"task_risk": 0.5, "failure_severity": 0.3}, {}]}
# Its scores: 0.5 x 0.3 and 0.5 x 0.5.
SELF_TEST_EXPECTED = (0.15, 0.25)
# Largest difference accepted between a score and its expected value: far above float
# rounding (about 1e-16 here), far below any real error. A choice, not a standard.
SELF_TEST_TOLERANCE = 1e-9


def _differs(scores: Sequence[float]) -> bool:
    """Whether ``scores`` (as many as expected) are not :data:`SELF_TEST_EXPECTED`."""
    return any(
        abs(got - want) > SELF_TEST_TOLERANCE
        for got, want in zip(scores, SELF_TEST_EXPECTED, strict=True)
    )


def self_test() -> None:
    """Validate and score :data:`SELF_TEST_INPUT` in-process (no HTTP, no app).

    Raises:
        RuntimeError: ``self-test failed: ...`` if validation or scoring raises, or if the
            scores differ from :data:`SELF_TEST_EXPECTED` by more than
            :data:`SELF_TEST_TOLERANCE`.
    """
    try:
        request = ScoreRequest.model_validate(SELF_TEST_INPUT)
        scores = score_features(request.features)
    except Exception as exc:  # pragma: no cover - only on a broken install
        raise RuntimeError(f"self-test failed: {type(exc).__name__}: {exc}") from exc
    if len(scores) != len(SELF_TEST_EXPECTED) or _differs(scores):
        raise RuntimeError(f"self-test failed: expected {SELF_TEST_EXPECTED}, got {scores}")


async def asgi_post(
    app: ASGIApp,
    path: str,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    receive: Receive | None = None,
) -> tuple[int, bytes]:
    """POST ``body`` to ``path`` of an ASGI app in-process; return status and body.

    Args:
        app: any ASGI app (called once, with an HTTP/1.1 scope from 127.0.0.1).
        path: the request path, e.g. :data:`salience.models.SCORE_PATH`.
        body: the request body, sent in one ``http.request`` message.
        headers: added after ``content-type: application/json`` and ``content-length``
            (the length of ``body``, in bytes); none by default.
        receive: an ASGI ``receive`` to use instead of sending ``body``; then no
            Content-Length is added (``body`` is ignored).

    Returns:
        ``(status, body)``: the HTTP status (0 if the app never started a response) and
        the response body bytes, all chunks joined.
    """
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
    """Post :data:`SELF_TEST_INPUT` through a whole ASGI app in-process and check the answer.

    Args:
        app: the ASGI app, normally one built by :func:`salience.api.create_app`.
        path: where to post; default :data:`salience.models.SCORE_PATH`.

    Raises:
        RuntimeError: ``probe of POST <path> failed: HTTP <status>: <first 200 bytes>``
            unless the answer is a 200 with a ``scores`` list of the expected length;
            ``probe of POST <path>: expected ..., got ...`` if a score differs from
            :data:`SELF_TEST_EXPECTED` by more than :data:`SELF_TEST_TOLERANCE`.
    """
    status, raw = await asgi_post(app, path, json.dumps(SELF_TEST_INPUT).encode())
    try:
        scores = json.loads(raw)["scores"] if status == 200 else None
    except (ValueError, KeyError, TypeError):
        scores = None
    if not isinstance(scores, list) or len(scores) != len(SELF_TEST_EXPECTED):
        raise RuntimeError(f"probe of POST {path} failed: HTTP {status}: {raw[:200]!r}")
    if _differs(scores):
        raise RuntimeError(f"probe of POST {path}: expected {SELF_TEST_EXPECTED}, got {scores}")


__all__ = [
    "SELF_TEST_EXPECTED",
    "SELF_TEST_INPUT",
    "SELF_TEST_TOLERANCE",
    "asgi_post",
    "probe_app",
    "self_test",
]
