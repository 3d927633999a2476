"""The error body every failure answers with, and the exception handlers that produce it.

Every error response is ``{"status": "error", "error": "<what is wrong and where>"}``
(:class:`salience.models.ErrorResponse`), whatever raised it:

* :func:`error_response` builds that body; the body size limit (:mod:`salience.body_limit`)
  and the Content-Type check (:mod:`salience.routing`) call it directly;
* :func:`add_error_handlers` installs the handlers turning FastAPI's and Starlette's
  exceptions into it: request validation errors (400 for a body that is not JSON, 422
  for schema violations), HTTP exceptions (404, 405 with its ``Allow`` header, 413, ...)
  and, as a last resort, any other exception (500);
* :func:`format_validation_errors` words pydantic errors location first
  (``features[1].task_risk: ...``), for the 422 messages and for bad Serve ``args:``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

# At most this many individual problems are spelled out in one error message, the rest
# being counted ("... and 3 more error(s)"). A choice of this project, not a protocol
# limit: enough to fix a typical request in one round, short enough to read in a log line.
MAX_REPORTED_ERRORS = 5

# FastAPI's own 400 detail for a body it failed to parse; matched verbatim.
_FASTAPI_BODY_PARSE_DETAIL = "There was an error parsing the body"


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one and only error body shape.

    Args:
        status_code: HTTP status of the response (4xx, 500 or 503).
        message: the ``error`` field: what is wrong and where.
        headers: extra response headers (e.g. ``Allow`` on a 405); none by default.

    Returns:
        A ``JSONResponse`` with body ``{"status": "error", "error": message}``.
    """
    return JSONResponse(
        {"status": "error", "error": message}, status_code=status_code, headers=headers
    )


def format_location(loc: Sequence[int | str]) -> str:
    """Render a pydantic error location the way a client writes it.

    ``("body", "features", 1, "task_risk")`` -> ``"features[1].task_risk"``: a leading
    ``"body"`` is dropped, ints become ``[i]``, names are joined with dots. An empty
    location (or ``("body",)`` alone) gives ``"body"``.
    """
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def format_validation_errors(errors: Sequence[Any]) -> str:
    """Human-readable, location-first summary of pydantic/FastAPI errors.

    Args:
        errors: pydantic error dicts (``ValidationError.errors()`` or
            ``RequestValidationError.errors()``), each read for ``loc`` and ``msg``.

    Returns:
        ``"<location>: <msg>"`` items joined by ``"; "``, at most
        :data:`MAX_REPORTED_ERRORS` of them followed by ``"... and N more error(s)"``;
        ``"invalid request"`` if ``errors`` is empty.
    """
    messages = [f"{format_location(err.get('loc', ()))}: {err.get('msg')}" for err in errors]
    if len(messages) > MAX_REPORTED_ERRORS:
        extra = len(messages) - MAX_REPORTED_ERRORS
        messages = [*messages[:MAX_REPORTED_ERRORS], f"... and {extra} more error(s)"]
    return "; ".join(messages) or "invalid request"


def add_error_handlers(app: FastAPI) -> None:
    """Install on ``app`` the handlers giving every error the :func:`error_response` shape.

    * ``RequestValidationError``: 400 ``body: invalid JSON at position N: ...`` if the body
      is not JSON, else 422 with :func:`format_validation_errors`;
    * Starlette ``HTTPException`` (FastAPI's included): its status and headers, with the
      messages ``no route for GET /x`` (404), ``method PUT not allowed for /x`` (405),
      ``body: could not be parsed as JSON`` (FastAPI's generic 400), else its detail;
    * any other ``Exception``: 500 ``internal error: <exception class>`` (the exception's
      text is not shown to clients).
    """
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _unexpected_error_handler)


def _json_error(errors: Sequence[Any]) -> dict[str, Any] | None:
    return next((err for err in errors if err.get("type") == "json_invalid"), None)


async def _validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    bad_json = _json_error(errors)
    if bad_json is not None:
        loc = bad_json.get("loc", ())
        position = f" at position {loc[1]}" if len(loc) > 1 else ""
        detail = (bad_json.get("ctx") or {}).get("error") or bad_json.get("msg")
        return error_response(400, f"body: invalid JSON{position}: {detail}")
    return error_response(422, format_validation_errors(errors))


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed for {request.url.path}"
    elif exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_DETAIL:
        # FastAPI's catch-all for bodies json.loads chokes on without a JSONDecodeError
        # (e.g. nesting deeper than the recursion limit).
        message = "body: could not be parsed as JSON"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


async def _unexpected_error_handler(_: Request, exc: Exception) -> JSONResponse:
    return error_response(500, f"internal error: {type(exc).__name__}")


__all__ = [
    "MAX_REPORTED_ERRORS",
    "add_error_handlers",
    "error_response",
    "format_location",
    "format_validation_errors",
]
