"""A second Serve application for rayforge's tests, built into the wheelhouse like the salience
app and deployed beside it on its own route prefix: answers a posted JSON body with that body,
the application's name and the path it was asked on. With ``?delay_s=<seconds>`` (at most
MAX_DELAY_S) it answers that much later: a long request the fault tests keep in flight while a
node stops."""

import asyncio

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

APP_NAME = "rayforge-echo"
MAX_DELAY_S = 120.0


@serve.deployment
class Echo:
    """POST any JSON body: ``{"app": APP_NAME, "path": <path>, "echo": <body>}``."""

    async def __call__(self, request: Request) -> dict | JSONResponse:
        raw = request.query_params.get("delay_s", "0")
        try:
            delay = float(raw)
        except ValueError:
            delay = -1.0
        if not 0 <= delay <= MAX_DELAY_S:
            return JSONResponse(
                {"status": "error", "error": f"delay_s must be 0-{MAX_DELAY_S:g} s, got {raw!r}"},
                status_code=422,
            )
        body = await request.json()
        if delay:
            await asyncio.sleep(delay)
        return {"app": APP_NAME, "path": request.url.path, "echo": body}


app = Echo.bind()
