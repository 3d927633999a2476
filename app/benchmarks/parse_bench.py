"""In-process timing of ``POST /score/salience``: no network, no Ray, no HTTP client.

Drives the ASGI app directly (middleware, routing, body reading, parsing, validation,
scoring, response) and, separately, the parsing/validation steps alone, for bodies of
1, 1,000 and 10,000 full-precision items. Prints the best and the median of ``--runs``
runs in milliseconds. Only relative sizes are meaningful on a shared machine.

    cd app && python benchmarks/parse_bench.py [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from salience.api import create_app
from salience.models import SCORE_PATH, request_model
from salience.probe import asgi_post
from salience.scoring import score_features

SIZES = (1, 1_000, 10_000)


def make_body(items: int, seed: int = 0, invalid_last: bool = False) -> bytes:
    rng = random.Random(seed)
    features = [{"task_risk": rng.random(), "failure_severity": rng.random()} for _ in range(items)]
    if invalid_last:
        features[-1]["task_risk"] = 1.5
    return json.dumps({"features": features}).encode()


async def post(app: Any, body: bytes) -> tuple[int, bytes]:
    return await asgi_post(app, SCORE_PATH, body)


def best_and_median(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="runs per measurement (best of)")
    args = parser.parse_args()

    app = create_app()
    model = request_model(10_000)
    loop = asyncio.new_event_loop()
    print(f"Python {sys.version.split()[0]}, best / median of {args.runs} runs, ms")
    print("| step | " + " | ".join(f"{n:,} items" for n in SIZES) + " |")
    print("| --- |" + " ---: |" * len(SIZES))

    bodies = {n: make_body(n) for n in SIZES}
    invalid = {n: make_body(n, invalid_last=True) for n in SIZES}
    for n, body in bodies.items():  # sanity check + warm-up
        status, raw = loop.run_until_complete(post(app, body))
        assert status == 200, raw[:200]
        assert len(json.loads(raw)["scores"]) == n
        status, raw = loop.run_until_complete(post(app, invalid[n]))
        assert status == 422, raw[:200]

    def request(body: bytes) -> Callable[[], Any]:
        return lambda: loop.run_until_complete(post(app, body))

    steps: dict[str, Callable[[int], Callable[[], Any]]] = {
        "whole request through the app (ASGI)": lambda n: request(bodies[n]),
        "whole request, last item invalid (422)": lambda n: request(invalid[n]),
        "`json.loads` + `model_validate` + scoring": lambda n: (
            lambda: score_features(model.model_validate(json.loads(bodies[n])).features)
        ),
        "`model_validate_json` + scoring": lambda n: (
            lambda: score_features(model.model_validate_json(bodies[n]).features)
        ),
    }
    for label, make in steps.items():
        cells = []
        for n in SIZES:
            runs = args.runs if n > 1 else args.runs * 20
            best, median = best_and_median(make(n), runs)
            cells.append(f"{best:.3f} / {median:.3f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    loop.close()


if __name__ == "__main__":
    main()
