"""Print the Grafana dashboards of the installed Ray, as Ray itself generates them.

Usage: ray_grafana_dashboards.py   (run with the Ray virtualenv's Python; no Ray needs to run)

Calls every generate_*_grafana_dashboard() function of Ray's grafana_dashboard_factory (the
ones Ray's dashboard calls when a head starts: default, Serve, Serve deployment, Data, Train,
the LLM ones; a later Ray's new ones too) and prints one JSON object on stdout:

    {"ray_version": "<ray.__version__>", "dashboards": {"<uid>.json": <dashboard>, ...}}

Each dashboard keeps Ray's uid (the one Ray's dashboard links to) and gets a null id, so that
Grafana provisions it under that uid in any instance. Ray reads overrides of each dashboard's
uid, global filters and log link from RAY_GRAFANA_<NAME>_DASHBOARD_UID,
RAY_GRAFANA_<NAME>_DASHBOARD_GLOBAL_FILTERS and RAY_GRAFANA_<NAME>_LOG_LINK_URL: every
RAY_GRAFANA_* variable is cleared first, so the output depends on the Ray release alone.
Exits non-zero with the reason on stderr when Ray has no such function or two give one uid.
"""

import json
import os
import sys

# Before Ray is imported: the factory reads them when each dashboard is generated.
OVERRIDE_PREFIX = "RAY_GRAFANA_"
for _name in [name for name in os.environ if name.startswith(OVERRIDE_PREFIX)]:
    del os.environ[_name]

import ray  # noqa: E402
from ray.dashboard.modules.metrics import grafana_dashboard_factory  # noqa: E402

GENERATOR_PREFIX = "generate_"
GENERATOR_SUFFIX = "_grafana_dashboard"


def generators() -> dict:
    """The factory's public generate_<kind>_grafana_dashboard functions, by name."""
    return {
        name: getattr(grafana_dashboard_factory, name)
        for name in sorted(vars(grafana_dashboard_factory))
        if name.startswith(GENERATOR_PREFIX)
        and name.endswith(GENERATOR_SUFFIX)
        and callable(getattr(grafana_dashboard_factory, name))
    }


def dashboards() -> dict:
    """Every dashboard, by file name (<uid>.json)."""
    out: dict = {}
    found = generators()
    if not found:
        sys.exit(
            f"Ray {ray.__version__} has no {GENERATOR_PREFIX}*{GENERATOR_SUFFIX} function in "
            f"{grafana_dashboard_factory.__file__}"
        )
    for name, generate in found.items():
        content, uid = generate()
        dashboard = json.loads(content)
        if not uid or dashboard.get("uid") != uid:
            sys.exit(f"{name}() returned uid {uid!r}, its dashboard {dashboard.get('uid')!r}")
        file_name = f"{uid}.json"
        if file_name in out:
            sys.exit(f"{name}() returned uid {uid!r}, which another dashboard has")
        # Grafana gives a provisioned dashboard its own id; the uid is what links to it.
        dashboard["id"] = None
        out[file_name] = dashboard
    return out


def main() -> None:
    result = {"ray_version": ray.__version__, "dashboards": dashboards()}
    json.dump(result, sys.stdout, sort_keys=True, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
