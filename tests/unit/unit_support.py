"""Helpers of the unit tests: recorded dashboard answers, the stub dashboard that serves them,
and running an Ansible module's main() in this process.

The JSON files in tests/unit/fixtures were recorded from a real Ray 2.60 lab cluster (three
nodes, 4 CPUs in all):

* serve_running_healthy.json: ``GET /api/serve/applications/`` of the healthy cluster;
* serve_config_lab.json: the Serve config it was deployed with (its applications equal the
  answer's ``deployed_app_config`` entries);
* serve_deploying_unschedulable_early.json, serve_unschedulable_after_25s.json: after a PUT
  of the same config with SalienceScorer at 64 replicas (``scaled_config()``), shortly after
  and 25 s after: DEPLOYING, UPSCALING, never enough CPUs;
* serve_deploy_failed_import.json: after a PUT of a config whose import_path does not exist
  (``broken_import_config()``): DEPLOY_FAILED with Serve's traceback;
* serve_shut_down.json: after ``DELETE``.

The cluster_* files were recorded together from a later lab (a head without CPUs at
172.18.0.2, workers at .3 and .4 with 2 CPUs each, the default applications, HAProxy proxies):

* cluster_serve_config.json: the Serve config it ran (/etc/rayforge/serve-config.json);
* cluster_healthy_nodes.json, cluster_healthy_serve.json, cluster_healthy_actors.json:
  ``GET /nodes?view=summary``, ``/api/serve/applications/`` and the state API's ALIVE actors
  (ray_dashboard.ALIVE_ACTORS_API) of the healthy cluster;
* cluster_worker_stopped_nodes.json, cluster_worker_stopped_serve.json: the same 25 s after
  ``systemctl stop ray-worker`` on worker 2 (its node DEAD, its anchor replica STARTING).
"""

from __future__ import annotations

import copy
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

FIXTURES = Path(__file__).resolve().parent / "fixtures"
API = "/api/serve/applications/"
NODES = "/nodes?view=summary"
GCS_HEALTH = "/api/gcs_healthz"
# What the dashboard answers, word for word, to a request without the cluster token.
UNAUTHORIZED_BODY = "Unauthorized: Missing authentication token"


# --- Recorded answers -----------------------------------------------------------------------


def recorded(name: str) -> dict:
    """A recorded answer (or config) of tests/unit/fixtures, by file stem; a fresh copy."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def lab_config() -> dict:
    """The Serve config the recorded lab cluster was deployed with (serve_config_lab.json)."""
    return recorded("serve_config_lab")


def app_of(config: dict, name: str) -> dict:
    return next(app for app in config["applications"] if app["name"] == name)


def config_with(**changes: Callable[[dict], None]) -> dict:
    """The lab config with each named application changed in place by its function."""
    config = lab_config()
    for name, change in changes.items():
        change(app_of(config, name.replace("_", "-")))
    return config


def scaled_config(replicas: int = 64) -> dict:
    """The lab config with SalienceScorer at REPLICAS: the recorded unschedulable deploy."""

    def scale(app: dict) -> None:
        app["deployments"][0]["num_replicas"] = replicas

    return config_with(seedcore_ml=scale)


def broken_import_config() -> dict:
    """The lab config whose seedcore-ml import_path does not exist: the recorded failed one."""

    def break_it(app: dict) -> None:
        app["import_path"] = "salience.no_such_module:app_builder"

    return config_with(seedcore_ml=break_it)


def new_build_config(build: str = "0123456789abcdef") -> dict:
    """The lab config of another app build (RAYFORGE_APP_BUILD of every application)."""
    config = lab_config()
    for app in config["applications"]:
        app["runtime_env"]["env_vars"]["RAYFORGE_APP_BUILD"] = build
    return config


def healthy_running(config: dict) -> dict:
    """serve_running_healthy.json as Serve would answer once CONFIG is deployed and healthy.

    Built, not recorded: the recorded healthy answer with each application's
    ``deployed_app_config`` replaced by CONFIG's entry of the same name, and the recorded
    applications CONFIG does not name dropped (a declarative PUT removes them). Statuses,
    replicas and targets stay as recorded (every deployment HEALTHY, all replicas RUNNING).
    Every application of CONFIG must be one the lab ran (seedcore-ml, rayforge-proxy-anchor).
    """
    answer = recorded("serve_running_healthy")
    apps = answer["applications"]
    answer["applications"] = {}
    for app in config.get("applications", []):
        entry = copy.deepcopy(apps[app["name"]])
        entry["deployed_app_config"] = copy.deepcopy(app)
        answer["applications"][app["name"]] = entry
    return answer


# --- The recorded dashboard -----------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of the stub: a status and a body (a dict is sent as JSON). TRUNCATED:
    the headers announce the whole body, half of it is sent, and the connection is closed
    (a dashboard that died while answering)."""

    status: int
    body: dict | str = ""
    truncated: bool = False

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode(), "application/json"
        return self.body.encode(), "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Request:
    """One request the stub received (headers with lower-case names, body as parsed JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class RecordedDashboard:
    """Ray's dashboard REST API for Serve, answering with answers recorded from a real cluster.

    Every request is recorded in ``requests`` (method, path, headers, JSON body). Answers:

    * ``GET /api/serve/applications/`` answers from a script, a queue set with ``serve(...)``:
      each GET takes the next answer, and the last one is repeated for as long as it is asked.
      A dict is answered as JSON with 200; an ``Answer`` gives any status and body (a 503
      while the dashboard starts, say). An empty script answers 500.
    * ``PUT /api/serve/applications/`` answers 200 with an empty body, as Ray does, and makes
      the script what Serve reports after that deploy: the answers registered for exactly that
      config with ``after_put(config, ...)`` (for example the recorded
      serve_deploying_unschedulable_early.json then serve_unschedulable_after_25s.json after
      the config with 64 replicas), or else ``healthy_running(body)``: the recorded healthy
      answer whose ``deployed_app_config`` entries are the PUT's applications.
    * ``DELETE /api/serve/applications/`` answers 200 and makes the script ``after_delete``,
      by default the recorded serve_shut_down.json.
    * ``GET /api/gcs_healthz`` answers 200 ``success`` (a dashboard that reaches a healthy
      GCS), or from a script set with ``answer(GCS_HEALTH, ...)``; any other GET path answers
      from a script set with ``answer(path, ...)`` (the recorded nodes_*.json for
      ``/nodes?view=summary``), as ``serve`` does, and 404 without one.
    * With ``token`` set, a request without ``Authorization: Bearer <token>`` answers 401 with
      the dashboard's recorded body, "Unauthorized: Missing authentication token".

    ``during_put``, when set, is called with the PUT's body in the request's thread before
    the answer, and ``during_delete`` likewise before a DELETE's (a Serve that takes its time
    to shut down) (to look at the host while a deploy is under way). The server is bound when
    made; ``start()`` makes it listen (until then a connection is refused, as to a dashboard
    that is not up yet).
    """

    def __init__(self, token: str | None = None):
        self.token = token
        self.requests: list[Request] = []
        self.during_put: Callable[[Any], None] | None = None
        self.during_delete: Callable[[], None] | None = None
        self.after_delete: list[dict | Answer] = [recorded("serve_shut_down")]
        self._script: deque[dict | Answer] = deque()
        self._paths: dict[str, deque[dict | Answer]] = {GCS_HEALTH: deque([Answer(200, "success")])}
        self._after_put: list[tuple[dict, list[dict | Answer]]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(), False)
        self._server.daemon_threads = True
        self._server.server_bind()
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    # Script

    def serve(self, *answers: dict | Answer) -> RecordedDashboard:
        with self._lock:
            self._script = deque(answers)
        return self

    def answer(self, path: str, *answers: dict | Answer) -> RecordedDashboard:
        """Scripts the answers of GET PATH (a path other than Serve's), as serve() does."""
        with self._lock:
            self._paths[path] = deque(answers)
        return self

    def after_put(self, config: dict, *answers: dict | Answer) -> RecordedDashboard:
        with self._lock:
            self._after_put.append((copy.deepcopy(config), list(answers)))
        return self

    # Looking at what was received

    def calls(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(r.method, r.path) for r in self.requests]

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls()]

    def bodies(self, method: str) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests if r.method == method]

    # Server

    def start(self) -> RecordedDashboard:
        self._server.server_activate()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def _answer(self, method: str, path: str, headers: dict, body: Any) -> Answer:
        with self._lock:
            self.requests.append(Request(method, path, headers, body))
            if self.token and headers.get("authorization") != f"Bearer {self.token}":
                return Answer(401, UNAUTHORIZED_BODY)
            if path != API:
                script = self._paths.get(path) if method == "GET" else None
                if not script:
                    return Answer(404, "404: Not Found")
                answer = script.popleft() if len(script) > 1 else script[0]
                return answer if isinstance(answer, Answer) else Answer(200, answer)
            if method == "GET":
                if not self._script:
                    return Answer(500, "no scripted answer")
                answer = self._script.popleft() if len(self._script) > 1 else self._script[0]
                return answer if isinstance(answer, Answer) else Answer(200, answer)
            if method == "DELETE":
                self._script = deque(self.after_delete)
                pending = self.during_delete
            elif method == "PUT":
                scripted = [answers for config, answers in self._after_put if config == body]
                self._script = deque(scripted[0] if scripted else [healthy_running(body)])
                put_hook = self.during_put
                pending = None if put_hook is None else (lambda: put_hook(body))
            else:
                return Answer(405, "405: Method Not Allowed")
        # Outside the lock: the hook may look at the host, or take its time.
        if pending is not None:
            pending()
        return Answer(200)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = stub._answer(self.command, self.path, headers, body)
                data, content_type = answer.encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if answer.truncated else data)
                self.close_connection = True

            do_GET = do_PUT = do_DELETE = do_POST = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


# --- Running an Ansible module's main() ------------------------------------------------------


def run_module(module: ModuleType, args: dict, capsys: pytest.CaptureFixture) -> dict:
    """Runs MODULE.main() with ARGS as Ansible would pass them; the JSON result it printed,
    with ``rc``: 0 for exit_json, 1 for fail_json."""
    capsys.readouterr()  # what was printed before is not the module's
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        module.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    result["rc"] = exited.value.code
    return result


class LocalHTTPServer:
    """HANDLER served on 127.0.0.1, on a free port, by a thread until close()."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


def read_textfile(path: Path) -> dict[str, dict[tuple, float]]:
    """The samples of a node exporter textfile that rayforge wrote, parsed by
    prometheus_client's own parser (the reference for the format): name -> {labels as sorted
    (name, value) pairs: value}. Every metric must have its HELP text."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        assert family.documentation, family.name
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out
