"""A second Serve application for rayforge's tests, built into the wheelhouse like the salience
app and deployed beside it on its own route prefix: answers a posted JSON body with that body,
the application's name and the path it was asked on."""

from ray import serve
from starlette.requests import Request

APP_NAME = "rayforge-echo"


@serve.deployment
class Echo:
    """POST any JSON body: ``{"app": APP_NAME, "path": <path>, "echo": <body>}``."""

    async def __call__(self, request: Request) -> dict:
        return {"app": APP_NAME, "path": request.url.path, "echo": await request.json()}


app = Echo.bind()
