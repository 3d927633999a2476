"""Shared fixtures of the unit tests: the product files as modules, a recorded Ray dashboard,
and a way to run an Ansible module's main() in this process.

Nothing here starts Ray, Docker or any process: the dashboard is a small threaded HTTP server
on 127.0.0.1 that answers with what a real Ray 2.60 lab cluster answered (tests/unit/fixtures;
see unit_support.RecordedDashboard), and every poll interval of the dashboard client is made
short.

The product files are loaded from their place in the roles, the way they run on a host:

* roles/ray/module_utils/ray_dashboard.py is imported once, as ``ray_dashboard`` (its folder
  is put on sys.path, as the reconciler finds it beside itself on the head), and the same
  module object is registered as ``ansible.module_utils.ray_dashboard`` (the name Ansible's
  module payload gives it), so the Ansible modules, the reconciler and the client tests share
  one module and one patched POLL_S;
* the Ansible modules, the reconciler, the liveness watchdog, the log pruner, the Serve gate and
  tests/support/load_client.py are loaded with importlib from their files.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import ansible.module_utils
import pytest
from unit_support import RecordedDashboard

REPO = Path(__file__).resolve().parents[2]
# The benchmark driver is the package bench/ at the repository root (tests/unit/test_bench_*).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
MODULE_UTILS = REPO / "roles" / "ray" / "module_utils"


def load_file(name: str, path: Path) -> ModuleType:
    """Imports the Python file PATH as module NAME (registered in sys.modules first, as an
    import would: dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with no_bytecode():
        spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def no_bytecode() -> Iterator[None]:
    """No __pycache__ is written beside the roles' files while they are imported."""
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def _import_ray_dashboard() -> ModuleType:
    if str(MODULE_UTILS) not in sys.path:
        sys.path.insert(0, str(MODULE_UTILS))
    with no_bytecode():
        module = importlib.import_module("ray_dashboard")
    assert Path(module.__file__).resolve() == MODULE_UTILS / "ray_dashboard.py"
    sys.modules["ansible.module_utils.ray_dashboard"] = module
    ansible.module_utils.ray_dashboard = module  # type: ignore[attr-defined]
    return module


@pytest.fixture(scope="session")
def ray_dashboard() -> ModuleType:
    """roles/ray/module_utils/ray_dashboard.py, also as ansible.module_utils.ray_dashboard."""
    return _import_ray_dashboard()


@pytest.fixture(scope="session")
def ray_verdict() -> ModuleType:
    """roles/ray/module_utils/ray_verdict.py, also as ansible.module_utils.ray_verdict."""
    module = load_file("ray_verdict", MODULE_UTILS / "ray_verdict.py")
    sys.modules["ansible.module_utils.ray_verdict"] = module
    ansible.module_utils.ray_verdict = module  # type: ignore[attr-defined]
    return module


@pytest.fixture(scope="session")
def serve_apply(ray_dashboard: ModuleType) -> ModuleType:
    """roles/ray_serve/library/ray_serve_apply.py (imports ansible.module_utils.ray_dashboard)."""
    return load_file("ray_serve_apply", REPO / "roles/ray_serve/library/ray_serve_apply.py")


@pytest.fixture(scope="session")
def cluster_info(ray_dashboard: ModuleType) -> ModuleType:
    """roles/ray/library/ray_cluster_info.py (imports ansible.module_utils.ray_dashboard)."""
    return load_file("ray_cluster_info", REPO / "roles/ray/library/ray_cluster_info.py")


@pytest.fixture(scope="session")
def object_store_info() -> ModuleType:
    return load_file("ray_object_store_info", REPO / "roles/ray/library/ray_object_store_info.py")


@pytest.fixture(scope="session")
def gcs_probe() -> ModuleType:
    """roles/ray/library/ray_gcs_probe.py (the head's side of the preflight's GCS probe)."""
    return load_file("ray_gcs_probe", REPO / "roles/ray/library/ray_gcs_probe.py")


@pytest.fixture(scope="session")
def reconciler(ray_dashboard: ModuleType) -> ModuleType:
    """roles/ray_serve/files/rayforge_serve_reconciler.py (``from ray_dashboard import ...``)."""
    return load_file(
        "rayforge_serve_reconciler", REPO / "roles/ray_serve/files/rayforge_serve_reconciler.py"
    )


@pytest.fixture(scope="session")
def liveness(ray_dashboard: ModuleType) -> ModuleType:
    """roles/ray/files/rayforge_liveness.py (``from ray_dashboard import ...``)."""
    return load_file("rayforge_liveness", REPO / "roles/ray/files/rayforge_liveness.py")


@pytest.fixture(scope="session")
def log_prune() -> ModuleType:
    """roles/ray/files/rayforge_log_prune.py."""
    return load_file("rayforge_log_prune", REPO / "roles/ray/files/rayforge_log_prune.py")


@pytest.fixture(scope="session")
def serve_gate() -> ModuleType:
    return load_file(
        "rayforge_serve_gate", REPO / "roles/ray_firewall/files/rayforge_serve_gate.py"
    )


@pytest.fixture(scope="session")
def app_build() -> ModuleType:
    """roles/ray_node/library/ray_node_app_wheels.py (the controller's app wheel build)."""
    return load_file("ray_node_app_wheels", REPO / "roles/ray_node/library/ray_node_app_wheels.py")


@pytest.fixture(scope="session")
def rayforge_files() -> ModuleType:
    return load_file("rayforge_files", REPO / "roles/ray/library/rayforge_files.py")


@pytest.fixture(scope="session")
def load_client() -> ModuleType:
    return load_file("load_client", REPO / "tests/support/load_client.py")


@pytest.fixture(autouse=True)
def fast_polls(ray_dashboard: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client sleeps POLL_S (read at call time) between polls: 10 ms here, not 2 s."""
    monkeypatch.setattr(ray_dashboard, "POLL_S", 0.01)
    monkeypatch.setattr(ray_dashboard, "REQUEST_TIMEOUT_S", 5)


@pytest.fixture
def dashboard_stub() -> Iterator[RecordedDashboard]:
    """A listening RecordedDashboard without authentication, closed after the test: GETs
    answer from the script the test sets with recorded answers, and after a PUT of config X
    with serve_running_healthy.json whose deployed_app_config entries are X's applications
    (unless the test scripted what follows that PUT); see unit_support.RecordedDashboard."""
    stub = RecordedDashboard().start()
    yield stub
    stub.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections: bound, never listening, held for the
    test so that nothing else takes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()
