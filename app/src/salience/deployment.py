"""Ray Serve wrapper around :func:`salience.api.create_app` (kept deliberately thin).

The replica's health check is :func:`salience.probe.probe_app`.

Serve config (rendered by Ansible)::

    applications:
      - name: seedcore-ml
        route_prefix: /
        import_path: salience.deployment:app_builder
        args: {max_items: 10000, max_body_bytes: 2097152, model_name: salience_scorer}
        deployments:
          - name: SalienceScorer          # == DEPLOYMENT_NAME
            num_replicas: 2
            ray_actor_options: {num_cpus: 1, num_gpus: 0, memory: 1073741824}

How the pieces fit (Ray 2.60): ``@serve.ingress()`` is used *without* an app. The
replica first runs ``__init__`` (which receives the validated settings as a plain
dict via ``bind``), then calls ``__serve_build_asgi_app__`` to get the FastAPI app.
This lets ``args:`` from the config shape the app (body limit, max items) instead
of freezing a module-level app at import time.
"""

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from ray import serve
from ray.serve import Application

from salience.api import create_app
from salience.errors import format_validation_errors
from salience.models import AppSettings
from salience.probe import probe_app

DEPLOYMENT_NAME = "SalienceScorer"
IMPORT_PATH = "salience.deployment:app_builder"

# Defaults mirror the original seed deployment; the Serve config's `deployments:`
# section overrides any of them.
DEFAULT_NUM_REPLICAS = 2
DEFAULT_RAY_ACTOR_OPTIONS: dict[str, Any] = {
    "num_cpus": 1,
    "num_gpus": 0,
    "memory": 1024**3,  # 1 GiB, in bytes
}


@serve.deployment(
    name=DEPLOYMENT_NAME,
    num_replicas=DEFAULT_NUM_REPLICAS,
    ray_actor_options=DEFAULT_RAY_ACTOR_OPTIONS,
)
@serve.ingress()
class SalienceScorer:
    """One replica = one instance of the FastAPI app built from the settings."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self._salience_settings = AppSettings.model_validate(dict(settings or {}))
        self._salience_app: FastAPI | None = None

    def __serve_build_asgi_app__(self) -> FastAPI:
        self._salience_app = create_app(self._salience_settings)
        return self._salience_app

    async def check_health(self) -> None:
        """Called by Serve every ``health_check_period_s``: push a known request
        through the whole app on the replica's event loop and check the scores."""
        if self._salience_app is None:
            raise RuntimeError("ASGI app has not been built")
        await probe_app(self._salience_app)


def parse_args(args: Mapping[str, Any] | AppSettings | None) -> AppSettings:
    """Validate the application's ``args:``; raise ``ValueError`` naming the bad key."""
    if isinstance(args, AppSettings):
        return args
    try:
        return AppSettings.model_validate(dict(args or {}))
    except ValidationError as exc:
        raise ValueError(
            f"invalid args for {IMPORT_PATH}: {format_validation_errors(exc.errors())}"
        ) from None


def app_builder(args: dict[str, Any]) -> Application:
    """Serve application builder (``import_path: salience.deployment:app_builder``).

    ``args`` keys: ``max_items`` (default 10000), ``max_body_bytes`` (default
    2097152), ``model_name`` (default "salience_scorer"); unknown keys are errors.
    Bad args raise ``ValueError`` when the application is built, i.e. at deploy time.
    """
    settings = parse_args(args)
    return SalienceScorer.bind(settings.model_dump())
