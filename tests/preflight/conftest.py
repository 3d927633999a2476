"""The fixture that runs the bad-inventory cases of this directory (test_bad_inventories.py);
the harness it uses is preflight_support.py.

The runs start together, a few at a time (RAYFORGE_PREFLIGHT_JOBS, default 3), so the module
takes about as long as its slowest runs rather than their sum.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from preflight_support import JOBS, Run, free_ports, run_case


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """Every selected case's run, started together (JOBS at a time): case id -> Future[Run].

    A case that skips (pytest.skip in its edit, in a worker thread) raises Skipped from
    Future.result(), which skips its test.
    """
    # Each case once, however many tests read its run; the slow ones first, so that they do
    # not start last and run alone.
    cases = {
        item.callspec.params["case"].id: item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module
        and "case" in getattr(getattr(item, "callspec", None), "params", {})
    }
    selected = sorted(cases.values(), key=lambda case: not case.slow)
    ports = free_ports(len(selected))
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        futures: dict[str, Future[Run]] = {
            case.id: pool.submit(run_case, case, tmp_path_factory.mktemp(case.id), port)
            for case, port in zip(selected, ports, strict=True)
        }
        yield futures
        for future in futures.values():
            future.cancel()
