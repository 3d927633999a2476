"""Check a Serve config file with Ray's own schema before it goes live.

Usage: check_serve_config.py CONFIG.json   (run with the Ray virtualenv's Python)
Exits non-zero with the reason when Ray's ServeDeploySchema rejects the config, when a key
is unknown to that schema (Ray drops unknown keys silently: a typo such as `num_replica`
would deploy the default and never match what was asked), when two applications share a
name or route prefix, or when an import path does not resolve to a Serve application
(builders are called with the config's args, so bad args fail here too).
"""

import json
import sys

from ray.serve._private.utils import import_attr
from ray.serve.deployment import Application
from ray.serve.schema import (
    DeploymentSchema,
    HTTPOptionsSchema,
    RayActorOptionsSchema,
    ServeApplicationSchema,
    ServeDeploySchema,
)


def unknown_keys(raw: dict) -> list[str]:
    """Paths of keys that Ray's schema would silently drop."""

    def extra(model, data, where):
        if not isinstance(data, dict):
            return []
        return [f"{where}.{key}" for key in data if key not in model.model_fields]

    found = extra(ServeDeploySchema, raw, "config")
    found += extra(HTTPOptionsSchema, raw.get("http_options"), "http_options")
    for i, app in enumerate(raw.get("applications") or []):
        where = f"applications[{i}]"
        found += extra(ServeApplicationSchema, app, where)
        for j, dep in enumerate(app.get("deployments") or [] if isinstance(app, dict) else []):
            found += extra(DeploymentSchema, dep, f"{where}.deployments[{j}]")
            if isinstance(dep, dict):
                found += extra(
                    RayActorOptionsSchema,
                    dep.get("ray_actor_options"),
                    f"{where}.deployments[{j}].ray_actor_options",
                )
    return found


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    try:
        config = ServeDeploySchema.model_validate(raw)
    except Exception as err:  # pydantic's ValidationError, whichever pydantic Ray bundles
        print(f"Serve config rejected by Ray's schema:\n{err}", file=sys.stderr)
        return 1
    unknown = unknown_keys(raw)
    if unknown:
        print(
            "Serve config has keys Ray's schema does not know (typos?): " + ", ".join(unknown),
            file=sys.stderr,
        )
        return 1
    seen_names, seen_prefixes = set(), {}
    for app in config.applications:
        if app.name in seen_names:
            print(f"two applications are named {app.name!r}", file=sys.stderr)
            return 1
        seen_names.add(app.name)
        if app.route_prefix is not None:
            if app.route_prefix in seen_prefixes:
                print(
                    f"applications {seen_prefixes[app.route_prefix]!r} and {app.name!r} share "
                    f"route_prefix {app.route_prefix!r}: give each its own",
                    file=sys.stderr,
                )
                return 1
            seen_prefixes[app.route_prefix] = app.name
        try:
            target = import_attr(app.import_path)
            if not isinstance(target, Application) and callable(target):
                target = target(app.args or {})
        except Exception as err:  # any import or builder failure is a bad config
            print(f"application {app.name!r}: {app.import_path} failed: {err}", file=sys.stderr)
            return 1
        if not isinstance(target, Application):
            print(
                f"application {app.name!r}: {app.import_path} is not a Serve application "
                f"or a builder returning one (got {type(target).__name__})",
                file=sys.stderr,
            )
            return 1
    print(f"{path}: {len(config.applications)} application(s) valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
