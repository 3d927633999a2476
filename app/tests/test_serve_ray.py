"""End-to-end through a REAL local Ray + Serve, deployed the way the Serve config is.

The app is deployed from a config dict (the shape Ansible renders) through the same
controller code path as ``serve deploy`` / ``serve run config.yaml`` / the dashboard
REST API: import_path -> app_builder(args) -> deployments[] overrides. Requests go
over real HTTP through the Serve proxy.
"""

import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray")
httpx = pytest.importorskip("httpx")

from ray import serve  # noqa: E402
from ray.serve._private import api as serve_private_api  # noqa: E402
from ray.serve.schema import ApplicationStatus, ServeDeploySchema  # noqa: E402

from serve_config import APP_NAME, example_config  # noqa: E402

SRC_DIR = str(Path(__file__).resolve().parents[1] / "src")
ARGS = {"max_items": 100, "max_body_bytes": 8192, "model_name": "salience_scorer"}
DEPLOY_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(app_names: set[str], timeout_s: float = DEPLOY_TIMEOUT_S) -> dict[str, Any]:
    """Wait until every app has left DEPLOYING/NOT_STARTED; return their statuses."""
    deadline = time.monotonic() + timeout_s
    while True:
        apps = serve.status().applications
        if app_names <= set(apps) and all(
            apps[name].status not in (ApplicationStatus.DEPLOYING, ApplicationStatus.NOT_STARTED)
            for name in app_names
        ):
            return {name: apps[name] for name in app_names}
        if time.monotonic() > deadline:
            raise TimeoutError(f"apps {app_names} still deploying: {apps}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def serve_url() -> Iterator[str]:
    port = _free_port()
    with pytest.MonkeyPatch.context() as mp:
        # Workers (controller, replicas) inherit the environment of the local raylet:
        # make `salience` importable for them without installing the package.
        mp.setenv(
            "PYTHONPATH", os.pathsep.join(p for p in (SRC_DIR, os.environ.get("PYTHONPATH")) if p)
        )
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # Ray 2.60 turns on token auth for new local clusters (when RAY_AUTH_MODE is
        # unset) and, unless a token is given, writes one to ~/.ray/auth_token. Hand
        # it a throwaway token instead. (Setting RAY_AUTH_MODE=token here would not
        # work: the driver caches the mode when `ray` is imported.)
        mp.delenv("RAY_AUTH_MODE", raising=False)
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        mp.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
        mp.delenv("RAY_ADDRESS", raising=False)
        ray.init(
            address="local",  # always a fresh private instance, never an existing cluster
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
        )
        try:
            config = ServeDeploySchema.model_validate(
                example_config(
                    host="127.0.0.1",
                    port=port,
                    args=ARGS,
                    num_replicas=2,
                    ray_actor_options={"num_cpus": 0.5, "num_gpus": 0},
                )
            )
            client = serve_private_api.serve_start(http_options=config.http_options.model_dump())
            client.deploy_apps(config)
            status = _wait_for({APP_NAME})[APP_NAME]
            assert status.status == ApplicationStatus.RUNNING, status.message
            yield f"http://127.0.0.1:{port}"
        finally:
            serve.shutdown()
            ray.shutdown()


@pytest.fixture(scope="module")
def http(serve_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=serve_url, timeout=30) as client:
        yield client


def _assert_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "error"}
    assert body["status"] == "error"
    assert fragment in body["error"], body["error"]


def test_two_replicas_running(serve_url: str) -> None:
    deployment = serve.status().applications[APP_NAME].deployments["SalienceScorer"]
    assert deployment.replica_states == {"RUNNING": 2}


def test_score_over_http(http: httpx.Client) -> None:
    response = http.post(
        "/score/salience", json={"features": [{"task_risk": 0.5, "failure_severity": 0.3}]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scores"] == [pytest.approx(0.15)]
    assert body["status"] == "success"
    assert body["model"] == "salience_scorer"


def test_healthz_over_http(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_errors_keep_their_shape_through_the_proxy(http: httpx.Client) -> None:
    _assert_error(
        http.post("/score/salience", json={"features": [{}, {"task_risk": 2}]}),
        422,
        "features[1].task_risk: Input should be less than or equal to 1",
    )
    _assert_error(
        http.post(
            "/score/salience",
            content=b'{"features": [{"task_risk": NaN}]}',
            headers={"content-type": "application/json"},
        ),
        422,
        "finite number",
    )
    _assert_error(
        http.post("/score/salience", content=b"{", headers={"content-type": "application/json"}),
        400,
        "invalid JSON",
    )
    _assert_error(http.get("/nope"), 404, "/nope")
    _assert_error(http.get("/score/salience"), 405, "GET")


def test_app_args_reach_the_replicas(http: httpx.Client) -> None:
    """max_items / max_body_bytes come from the config's `args:`."""
    _assert_error(
        http.post("/score/salience", json={"features": [{}] * 101}), 422, "at most 100 items"
    )
    big = json.dumps({"features": [{"task_risk": 0.5}] * 1000}).encode()
    _assert_error(
        http.post("/score/salience", content=big, headers={"content-type": "application/json"}),
        413,
        "exceeds 8192 bytes",
    )

    def chunks() -> Iterator[bytes]:
        yield b'{"features": ['
        for _ in range(1000):
            yield b'{"task_risk": 0.5},'

    _assert_error(
        http.post(
            "/score/salience", content=chunks(), headers={"content-type": "application/json"}
        ),
        413,
        "exceeds 8192 bytes",
    )


def test_bad_args_fail_the_deploy_with_a_clear_message(serve_url: str) -> None:
    """A typo in `args:` marks that application DEPLOY_FAILED (others keep running)."""
    port = int(serve_url.rsplit(":", 1)[1])
    good = example_config(
        host="127.0.0.1", port=port, args=ARGS, ray_actor_options={"num_cpus": 0.5, "num_gpus": 0}
    )
    bad_app = dict(
        good["applications"][0], name="bad-args", route_prefix="/bad", args={"max_itemz": 5}
    )
    good["applications"].append(bad_app)
    client = serve.context._get_global_client()
    client.deploy_apps(ServeDeploySchema.model_validate(good))
    statuses = _wait_for({APP_NAME, "bad-args"})
    assert statuses["bad-args"].status == ApplicationStatus.DEPLOY_FAILED
    assert "max_itemz: Extra inputs are not permitted" in statuses["bad-args"].message
    assert statuses[APP_NAME].status == ApplicationStatus.RUNNING
