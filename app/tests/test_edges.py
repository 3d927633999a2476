"""Edges of the app's error handling, in-process (no Ray): each test fails when the check it
names is taken out of the code.

* an unexpected exception is a 500 in the error shape whose message names the exception's
  class only, never its text (:mod:`salience.errors`);
* the body size limit is inclusive: a body of exactly ``max_body_bytes`` is scored, one byte
  more is a 413 with its message, whether the size is declared (Content-Length) or streamed
  (chunked), and a declared one byte too many is refused before any of the body is read
  (:mod:`salience.body_limit`);
* a negative Content-Length is a 400 with a message, the body never read: neither a 500 nor
  a body taken at its actual size (:mod:`salience.body_limit`). uvicorn's HTTP parsers refuse
  such a header before the app sees it; the app does not rely on the server for that.
"""

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import salience.api
from conftest import SMALL, assert_error
from salience.api import create_app
from salience.models import SCORE_PATH, AppSettings
from salience.probe import asgi_post

JSON = {"content-type": "application/json"}
# A valid request: one item, scored 0.5 x 0.5. Padded with JSON whitespace to any size.
VALID = b'{"features": [{"task_risk": 0.5}]}'


def body_of(size: int) -> bytes:
    """VALID padded with trailing spaces (still valid JSON) to exactly SIZE bytes."""
    body = VALID + b" " * (size - len(VALID))
    assert len(body) == size
    return body


def limit_of(app: FastAPI) -> int:
    """The body size limit the app enforces: its settings' ``max_body_bytes``."""
    return app.state.settings.max_body_bytes


# --------------------------------------------------------------------- 500


@pytest.mark.parametrize("exc_class", [RuntimeError, ValueError, KeyError, ZeroDivisionError])
def test_500_names_the_exception_class_never_its_text(
    monkeypatch: pytest.MonkeyPatch, exc_class: type[BaseException]
) -> None:
    """An exception raised while scoring answers 500 ``internal error: <class>`` in the
    error shape; the exception's message (which may carry paths, values, secrets) appears
    nowhere in the answer, neither body nor headers."""
    secret = "s3cret-token /srv/rayforge/private/path value=0.4242"

    def broken_scoring(features: Any) -> list[float]:
        raise exc_class(secret)

    monkeypatch.setattr(salience.api, "score_features", broken_scoring)
    # Starlette re-raises the exception once the 500 is sent (for the server to log it);
    # the test client must hand back that answer instead.
    with TestClient(create_app(AppSettings()), raise_server_exceptions=False) as client:
        response = client.post(SCORE_PATH, json={"features": [{}]})
    message = assert_error(response, 500)
    assert message == f"internal error: {exc_class.__name__}"
    assert "s3cret" not in response.text
    assert "/srv/rayforge" not in response.text
    assert not any("s3cret" in value for value in response.headers.values())


# --------------------------------------------------------------- body size


def _chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    """BODY in pieces: sent without Content-Length (Transfer-Encoding: chunked)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("settings", [SMALL, AppSettings()], ids=["4-KiB", "default-2-MiB"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_of_exactly_the_limit_is_scored_one_byte_more_is_413(
    settings: AppSettings, framing: str
) -> None:
    """The limit is the largest body accepted: exactly ``max_body_bytes`` bytes is scored
    (200), ``max_body_bytes + 1`` is a 413 naming the limit. Both with a Content-Length
    (checked before reading) and chunked (counted while streaming)."""
    with TestClient(create_app(settings)) as client:
        limit = limit_of(client.app)  # type: ignore[arg-type]
        assert limit == settings.max_body_bytes

        def post(body: bytes) -> Any:
            content = body if framing == "content-length" else _chunks(body)
            return client.post(SCORE_PATH, content=content, headers=JSON)

        at_limit = post(body_of(limit))
        assert at_limit.status_code == 200, at_limit.text
        assert at_limit.json()["scores"] == [0.25]

        over = post(body_of(limit + 1))
        assert_error(over, 413, f"body: request body exceeds {limit} bytes")


class _CountingReceive:
    """ASGI receive() that counts its calls and sends BODY in one message."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls > 1:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": self.body, "more_body": False}


def _call_asgi(app: Any, content_length: bytes, receive: _CountingReceive) -> tuple[int, dict]:
    headers = [(b"content-length", content_length)]
    status, raw = asyncio.run(asgi_post(app, SCORE_PATH, b"", headers, receive=receive))
    return status, json.loads(raw)


def test_declared_one_byte_over_the_limit_is_refused_before_reading() -> None:
    """A Content-Length of ``max_body_bytes + 1`` is answered 413 from the header alone:
    none of the body is read (the limit on the declared size is the same as the streamed
    one, not looser)."""
    app = create_app(SMALL)
    limit = limit_of(app)
    receive = _CountingReceive(body_of(limit + 1))
    status, body = _call_asgi(app, str(limit + 1).encode(), receive)
    assert status == 413
    assert body == {"status": "error", "error": f"body: request body exceeds {limit} bytes"}
    assert receive.calls == 0

    receive = _CountingReceive(body_of(limit))  # the control: exactly the limit is read
    status, body = _call_asgi(app, str(limit).encode(), receive)
    assert status == 200, body
    assert receive.calls >= 1


# --------------------------------------------------------- negative Content-Length


@pytest.mark.parametrize("content_length", [b"-1", b"-5", b"-4096", b"-99999999999"])
def test_negative_content_length_is_400_and_the_body_is_not_read(content_length: bytes) -> None:
    """A negative Content-Length is malformed: 400 with a message naming the header, before
    the body is read, although the body that follows is a valid request (so a middleware
    that let it through would answer 200, and one that failed on it a 500)."""
    receive = _CountingReceive(VALID)
    status, body = _call_asgi(create_app(SMALL), content_length, receive)
    assert status == 400, body
    assert body == {"status": "error", "error": "Content-Length header is not a valid integer"}
    assert receive.calls == 0
