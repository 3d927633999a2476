"""rayforge's own metrics on the head: the Serve gate's, the reconciler's and the last healthy
deploy's *.prom files in the node exporter's textfile directory (ray_metrics_textfile_dir),
parsed with prometheus_client's parser, as the node exporter would read them; and the gate's
metric following a hold of the port within a few of its polls.

The directory is the node exporter role's to make: these tests need it on the head (they
fail, saying so, without it). Paths the roles give the units (the hold file, the last good
config) are read from the units' command lines: what the units were told.
"""

from __future__ import annotations

import hashlib
import shlex
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

GATE_UNIT = "rayforge-serve-gate"
RECONCILER_UNIT = "rayforge-serve-reconciler"


def unit_args(host, unit: str) -> dict[str, str]:
    """The --name=value arguments of UNIT's ExecStart, by name."""
    line = host.check_output(f"systemctl cat {unit}.service")
    command = line.split("ExecStart=", 1)[1].split("\n\n")[0].replace("\\\n", " ")
    args = {}
    for word in shlex.split(command.split("\n")[0]):
        if word.startswith("--") and "=" in word:
            name, value = word[2:].split("=", 1)
            args[name] = value
    return args


def samples(host, path: str) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label pairs: value} of the textfile at PATH; every metric with HELP."""
    out: dict[str, dict[tuple, float]] = {}
    text = host.file(path).content_string
    for family in text_string_to_metric_families(text):
        assert family.documentation, (path, family.name)
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
def textfile_dir(host, rayvars) -> str:
    path = rayvars["ray_metrics_textfile_dir"]
    assert host.file(path).is_directory, f"{path}: the node exporter's textfile directory"
    return path


def test_every_file_is_rayforges_readable_and_whole(host, textfile_dir):
    names = host.check_output(f"ls -A {textfile_dir}").split()
    ours = [n for n in names if n.startswith("rayforge_")]
    assert ours, names
    for name in ours:
        assert name.endswith(".prom"), f"{name}: a temporary file left behind"
        f = host.file(f"{textfile_dir}/{name}")
        assert f.mode & 0o004, f"{name}: mode {f.mode:o}, the node exporter cannot read it"
        assert all(metric.startswith("rayforge_") for metric in samples(host, f.path))


def test_units_write_into_the_textfile_directory(host, textfile_dir):
    for unit in (GATE_UNIT, RECONCILER_UNIT):
        path = unit_args(host, unit)["metrics-file"]
        assert path.startswith(textfile_dir + "/"), (unit, path)
        assert path.endswith(".prom"), (unit, path)
        assert host.file(path).is_file, (unit, path)


def test_gate_says_open_with_no_reason(host, textfile_dir):
    gate = samples(host, unit_args(host, GATE_UNIT)["metrics-file"])
    assert gate["rayforge_serve_gate_open"] == {(): 1}
    reasons = gate["rayforge_serve_gate_closed_reason"]
    assert {dict(k)["reason"] for k in reasons} == {
        "hold",
        "draining",
        "no_routes",
        "missing_routes",
        "down",
    }
    assert set(reasons.values()) == {0}
    assert 0 < gate["rayforge_serve_gate_last_change_timestamp_seconds"][()] <= time.time()


def test_reconciler_polls_and_is_ok(host, textfile_dir, rayvars):
    rec = samples(host, unit_args(host, RECONCILER_UNIT)["metrics-file"])
    assert rec["rayforge_serve_reconciler_state"] == {
        (("state", "ok"),): 1,
        (("state", "waiting"),): 0,
        (("state", "failed"),): 0,
    }
    assert set(rec["rayforge_serve_reconciler_actions_total"]) == {
        (("action", "reapply"),),
        (("action", "anchor"),),
    }
    assert rec["rayforge_serve_reconciler_failures_total"] == {(): 0}
    # The head's clock: it wrote the file. A poll every interval, and one more for slack.
    now = float(host.check_output("date +%s.%N"))
    polled = rec["rayforge_serve_reconciler_last_poll_timestamp_seconds"][()]
    assert now - polled < 2 * float(rayvars["ray_serve_reconciler_interval"]) + 5


def test_last_healthy_deploy_names_the_last_good_config(host, textfile_dir):
    deploy = next(
        samples(host, f"{textfile_dir}/{name}")
        for name in host.check_output(f"ls -A {textfile_dir}").split()
        if "rayforge_serve_last_healthy_deploy_info" in samples(host, f"{textfile_dir}/{name}")
    )
    last_good = unit_args(host, RECONCILER_UNIT)["config"]
    digest = hashlib.sha256(host.file(last_good).content).hexdigest()
    assert deploy["rayforge_serve_last_healthy_deploy_info"] == {(("config_hash", digest),): 1}
    modified = host.file(last_good).mtime.timestamp()
    assert deploy["rayforge_serve_last_healthy_deploy_timestamp_seconds"][()] >= modified - 1


def test_gate_metric_follows_a_hold_of_the_port(host, textfile_dir, rayvars):
    """The hold file the ray_serve role creates before a shutdown closes the port; the metric
    says closed (hold) within a few of the gate's polls, and open again once it is gone."""
    args = unit_args(host, GATE_UNIT)
    hold, path = args["hold-file"], args["metrics-file"]
    interval = float(rayvars["ray_firewall_serve_gate_interval"])
    assert not host.file(hold).exists, f"{hold} exists before the test: the port is held"
    before = samples(host, path)["rayforge_serve_gate_last_change_timestamp_seconds"][()]

    def gate_open() -> float:
        return samples(host, path)["rayforge_serve_gate_open"][()]

    def wait(value: int, timeout: float) -> float:
        """Seconds until the metric said VALUE (each look costs a round trip to the host)."""
        started = time.monotonic()
        while gate_open() != value:
            assert time.monotonic() - started < timeout, f"gate metric not {value} in {timeout} s"
            time.sleep(interval / 2)
        return time.monotonic() - started

    try:
        host.check_output(f"echo 'test_own_metrics holds the port' > {hold}")
        took = wait(0, timeout=max(20 * interval, 5))
        print(f"closed after {took:.2f} s (gate interval {interval:g} s)")
        gate = samples(host, path)
        assert gate["rayforge_serve_gate_closed_reason"][(("reason", "hold"),)] == 1
        assert sum(gate["rayforge_serve_gate_closed_reason"].values()) == 1
        assert gate["rayforge_serve_gate_last_change_timestamp_seconds"][()] > before
    finally:
        host.run(f"rm -f {hold}")
    took = wait(1, timeout=60)  # the proxy still routes: it opens at once
    print(f"open again after {took:.2f} s")
    assert set(samples(host, path)["rayforge_serve_gate_closed_reason"].values()) == {0}
