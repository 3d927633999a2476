"""The request body size limit: 413 for bodies larger than ``max_body_bytes``.

A pure-ASGI middleware, added to the app with ``app.add_middleware``: it sees every HTTP
request before routing, so the limit holds for every route and is applied before any of
the body is parsed. The limit itself is the
``max_body_bytes`` setting (:class:`salience.models.AppSettings`, default 2 MiB, the
Serve application's ``args:``).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from salience.errors import error_response

# What _content_length returns for a header that is not a non-negative integer.
_MALFORMED = -1


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` once a streamed body passes the limit (status 413).

    The detail is ``body: request body exceeds <limit> bytes``. It is an HTTPException so
    that FastAPI's body reader re-raises it untouched and the app's HTTPException handler
    (:func:`salience.errors.add_error_handlers`) renders it; the middleware catches it
    too in case nothing else did.

    Args:
        limit: the limit that was passed, in bytes.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"body: request body exceeds {limit} bytes")


class BodySizeLimitMiddleware:
    """Pure-ASGI request body limit.

    A declared ``Content-Length`` above the limit is answered 413 before any of the body
    is read; a malformed one (not a non-negative integer) is answered 400 ``Content-Length
    header is not a valid integer``. Otherwise (and for chunked bodies) bytes are counted
    as they stream in and reading stops with a 413 as soon as the limit is passed. Both
    answers have the :func:`salience.errors.error_response` shape. Non-HTTP scopes
    (lifespan, websocket) pass through untouched.

    Args:
        app: the ASGI app to protect.
        max_body_bytes: the largest body accepted, in bytes (a body of exactly this size
            passes). The app passes ``AppSettings.max_body_bytes``: default 2 MiB
            (2097152), at least 1024.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        limit = self.max_body_bytes
        declared = _content_length(scope)
        if declared == _MALFORMED:
            await error_response(400, "Content-Length header is not a valid integer")(
                scope, receive, send
            )
            return
        if declared is not None and declared > limit:
            await error_response(413, BodyTooLarge(limit).detail)(scope, receive, send)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if response_started:
                raise
            await error_response(413, exc.detail)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """Declared Content-Length; None if absent, ``_MALFORMED`` if malformed."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return _MALFORMED
            return length if length >= 0 else _MALFORMED
    return None


__all__ = ["BodySizeLimitMiddleware", "BodyTooLarge"]
