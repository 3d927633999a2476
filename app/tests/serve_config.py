"""The Serve config shape the Ansible role renders (one application, one deployment)."""

from typing import Any

APP_NAME = "seedcore-ml"


def example_config(
    *,
    host: str = "0.0.0.0",
    port: int = 8000,
    args: dict[str, Any] | None = None,
    num_replicas: int = 2,
    ray_actor_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "http_options": {"host": host, "port": port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": "salience.deployment:app_builder",
                "args": {"max_items": 10000, "max_body_bytes": 2097152} if args is None else args,
                "deployments": [
                    {
                        "name": "SalienceScorer",
                        "num_replicas": num_replicas,
                        "ray_actor_options": {"num_cpus": 1, "num_gpus": 0, "memory": 1073741824}
                        if ray_actor_options is None
                        else ray_actor_options,
                    }
                ],
            }
        ],
    }
