"""The Serve config exactly as the Ansible role renders it: roles/ray_serve's own template,
rendered by Ansible's templating with the ray and ray_serve roles' defaults and vars, then
the overrides a test asks for. A change to the template or the defaults reaches these tests,
so they cannot drift from what a cluster gets.

Needs ansible-core (the tooling venv has it); the proxy anchor application is left out (it
is rayforge's own module, installed on the hosts by the role, not in this venv).
"""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "roles" / "ray_serve" / "templates" / "serve-config.json.j2"


def _trusted(value: Any) -> Any:
    """Role variables as Ansible treats them: strings in role files are templates."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def role_variables() -> dict[str, Any]:
    """The ray and ray_serve roles' defaults and vars, as plain data (untemplated)."""
    loader = DataLoader()
    variables: dict[str, Any] = {}
    for role in ("ray", "ray_serve"):
        for part in ("defaults", "vars"):
            path = ROOT / "roles" / role / part / "main.yml"
            if path.exists():
                variables.update(loader.load_from_file(str(path)) or {})
    return variables


_ROLE = role_variables()
# The first application of the role's defaults: the salience app.
APP_NAME: str = _ROLE["ray_serve_applications"][0]["name"]
DEFAULT_HTTP_PORT: int = _ROLE["ray_serve_http_port"]


def example_config(
    *,
    host: str | None = None,
    port: int | None = None,
    args: dict[str, Any] | None = None,
    num_replicas: int | None = None,
    ray_actor_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The role's rendered config for its default applications; None keeps the role's value.
    HOST and PORT are Serve's http_options; the rest change the first application and its
    first deployment."""
    variables = copy.deepcopy(_ROLE)
    app = variables["ray_serve_applications"][0]
    deployment = app["deployments"][0]
    if host is not None:
        variables["ray_serve_http_host"] = host
    if port is not None:
        variables["ray_serve_http_port"] = port
    if args is not None:
        app["args"] = args
    if num_replicas is not None:
        deployment["num_replicas"] = num_replicas
    if ray_actor_options is not None:
        deployment["ray_actor_options"] = ray_actor_options
    variables = _trusted(variables)
    variables.update({"_ray_serve_app_build": "app-tests", "ray_serve_proxy_on_every_node": False})
    templar = Templar(loader=DataLoader(), variables=variables)
    return json.loads(templar.template(trust_as_template(TEMPLATE.read_text())))
