"""Churn for tests/test_disks.py, run on the head as the ray user with the venv's Python: many
short Ray tasks (some in a fresh worker process each, which leaves that worker's log files
behind when it exits, as real jobs do) and one tiny Serve application redeployed with new
arguments again and again (each version REPLICAS new replica processes), then deleted.

Arguments: TASKS FRESH_WORKERS (twice: the first ones print OUTPUT_BYTES each) OUTPUT_BYTES
REDEPLOYS REPLICAS APPLICATION ROUTE_PREFIX. Connects to RAY_ADDRESS with
the token of the environment (RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH); ends with ray.shutdown().
Prints one JSON line of timings.
"""

import json
import os
import sys
import time

import ray
from ray import serve

BATCH = 200


@ray.remote(num_cpus=0.01)
def tick(i):
    return i


@ray.remote(num_cpus=0.01, max_calls=1)
def fresh(i, output_bytes):
    # A job's output: what fills its worker's .out file.
    for _ in range(output_bytes // 1000):
        print("x" * 999)
    return os.getpid()


@serve.deployment(
    ray_actor_options={"num_cpus": 0},
    graceful_shutdown_timeout_s=1,
    graceful_shutdown_wait_loop_s=0.1,
)
class Churn:
    def __init__(self, version):
        self.version = version

    def __call__(self, request):
        return {"version": self.version}


def main(tasks, fresh_workers, output_bytes, redeploys, replicas, application, route_prefix):
    times = {}
    ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
    try:
        # Job output first; the fresh workers after the tasks open so many new files that Ray's
        # log monitor (which keeps up to 200 worker logs open, dead ones too, and lets go of
        # them all at once) closes the first ones', as it does on a busy node.
        start = time.monotonic()
        pids = ray.get([fresh.remote(i, output_bytes) for i in range(fresh_workers)])
        for first in range(0, tasks, BATCH):
            assert ray.get([tick.remote(i) for i in range(first, min(first + BATCH, tasks))])
        pids += ray.get([fresh.remote(i, 0) for i in range(fresh_workers)])
        times["fresh_workers"] = len(set(pids))
        times["tasks_s"] = round(time.monotonic() - start, 1)
        start = time.monotonic()
        for version in range(redeploys):
            app = Churn.options(num_replicas=replicas).bind(version)
            serve.run(app, name=application, route_prefix=route_prefix)
        times["redeploys_s"] = round(time.monotonic() - start, 1)
        start = time.monotonic()
        serve.delete(application)
        times["delete_s"] = round(time.monotonic() - start, 1)
    finally:
        ray.shutdown()
    print(json.dumps(times), flush=True)


if __name__ == "__main__":
    main(*map(int, sys.argv[1:6]), *sys.argv[6:8])
