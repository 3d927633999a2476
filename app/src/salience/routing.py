"""Route classes of the scoring endpoint: 415 for non-JSON bodies, and fast validation.

Both override FastAPI's ``APIRoute.get_route_handler``, whose handler reads, parses and
validates the body, then calls the endpoint. That reaches into FastAPI internals (the
route's ``body_field`` and ``dependant.body_params``, and the handler parsing a JSON body
by calling ``request.json()``); ``app/tests/test_api.py`` and ``app/tests/test_fuzz.py``
compare every answer with FastAPI's own, so a FastAPI release that changes them fails
there rather than in production:

* :class:`JSONBodyRoute` answers 415 when the Content-Type is missing or not JSON, before
  FastAPI looks at the body;
* :class:`FastJSONBodyRoute` (the one the app uses, :func:`salience.api.create_app`)
  adds one-pass validation of the raw body with pydantic's JSON parser, answering exactly
  what FastAPI's own ``json.loads`` + validation would.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from salience.errors import error_response


def is_json_content_type(value: str | None) -> bool:
    """Whether a Content-Type header value announces JSON.

    True for ``application/json`` and ``application/<anything>+json`` (e.g.
    ``application/problem+json``), case-insensitively and ignoring parameters such as
    ``; charset=utf-8``; False for anything else, an empty value or None (no header).
    """
    if not value:
        return False
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class JSONBodyRoute(APIRoute):
    """Route class rejecting non-JSON bodies with 415 *before* FastAPI parses them.

    A request whose Content-Type fails :func:`is_json_content_type` is answered 415
    ``Content-Type must be application/json (got '<value>')`` (or ``(no Content-Type
    header)``) in the :func:`salience.errors.error_response` shape. FastAPI's own
    handling of a wrong/missing Content-Type differs between versions; doing it here
    keeps the behaviour identical wherever it runs. Used as an ``APIRouter``'s
    ``route_class``.
    """

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def handler_with_content_type_check(request: Request) -> Any:
            content_type = request.headers.get("content-type")
            if not is_json_content_type(content_type):
                got = f"got {content_type!r}" if content_type else "no Content-Type header"
                return error_response(415, f"Content-Type must be application/json ({got})")
            return await handler(request)

        return handler_with_content_type_check


class FastJSONBodyRoute(JSONBodyRoute):
    """:class:`JSONBodyRoute` validating the body in one pass with pydantic's JSON parser.

    Applies when the endpoint takes the whole body as one pydantic model (``payload:
    ScoreRequest``); for any other endpoint it behaves as its parent. FastAPI would
    ``json.loads`` the body and then validate the resulting dicts, measured slower for
    large batches ("Large batches" in ``docs/benchmarks.md``). FastAPI's handler still does
    everything else (reading the body, deciding from the Content-Type whether to parse
    it, dependencies, calling the endpoint): only the ``request.json()`` it calls is
    replaced, by one returning the already validated model, which FastAPI's
    validation then passes through as is. A body that fails this validation goes to the
    original ``Request.json()`` (``json.loads``) and FastAPI's validation, so every error
    (400/422, wording, positions) is FastAPI's, and what pydantic's JSON parser refuses
    but ``json.loads`` accepts (a UTF-8 BOM, UTF-16/32 bodies) is still accepted.
    """

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()
        body_model = self._whole_body_model()
        if body_model is None:
            return handler

        async def handler_with_validated_json(request: Request) -> Any:
            # Shadows the method for this request only; FastAPI calls it when, and only
            # when, it parses the body as JSON.
            request.json = functools.partial(_validated_json, request, body_model)  # type: ignore[method-assign]
            return await handler(request)

        return handler_with_validated_json

    def _whole_body_model(self) -> type[BaseModel] | None:
        """The endpoint's pydantic model parameter if FastAPI validates the whole body
        against it (one body parameter, not embedded); None otherwise."""
        body_field = self.body_field
        body_params = self.dependant.body_params
        if body_field is None or len(body_params) != 1 or body_params[0] is not body_field:
            return None  # no body, several body parameters, or an embedded one
        param = inspect.signature(self.endpoint).parameters.get(body_field.name)
        model = param.annotation if param is not None else None
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model
        return None


async def _validated_json(request: Request, model: type[BaseModel]) -> Any:
    """Stand-in for ``request.json()``: the body validated as ``model`` by pydantic's JSON
    parser, or, if that fails, whatever ``Request.json()`` returns or raises."""
    body = await request.body()
    try:
        return model.model_validate_json(body)
    except ValidationError:
        return await Request.json(request)


__all__ = ["FastJSONBodyRoute", "JSONBodyRoute", "is_json_content_type"]
