"""Faults under load: what the cluster loses when something breaks, and how fast it serves again.

Each test starts a bounded load client (tests/support/load_client.py) that posts the first
application's smoke-test request to every node's Serve port, on the addresses the running
containers have now; lets it run a few seconds; makes the fault; waits until every node has
answered 2xx for a while or the recovery limit passes; and asserts on what the client saw:
failed requests per node and seconds until each node served for good. Expected values (ports,
unit names, applications, timeouts) come from the scenario's inventory over the role defaults.

These run after test_cluster.py (file order) and leave the cluster serving (the last one
upgrades the app to a new build). Alertmanager's notifications reach a webhook receiver that
runs on the controller through every test of this file (the scenario's inventory names it):
the host out for repair is paged, and resolved once back; every fault that heals by itself
pages nobody (the last test).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse

import pytest
import yaml
from alert_receiver import AlertReceiver
from load_client import LoadClient, describe, report

from conftest import (
    IP_CMD,
    ROOT,
    http,
    inventory_value,
    peer,
    run_playbook,
    smoke_path,
    wait_until,
)

testinfra_hosts = ["ansible://ray_head"]

BASELINE_S = 3  # load before the fault, to see that every node served
STEADY_S = 6  # every node answering 2xx this long counts as serving again
# The load client stops by itself after this many seconds or requests, whatever happens; a
# test whose fault outlasted it fails (LoadClient.covered()): the rolling upgrade alone takes
# about 400 s on this machine.
LOAD_LIMIT_S = 1200
LOAD_LIMIT_REQUESTS = 400_000
# The scenario's group of bare hosts that no play targets (molecule.yml): a test adds one to
# ray_workers, as an operator adds a new machine.
SPARE_GROUP = "spare_hosts"
# A joining node serves within this many seconds of its Ray unit becoming active.
JOIN_SERVES_S = 120


# The webhook receiver of the scenario's Alertmanager: one for the whole module (started by
# the first test, closed after the last), so that it hears every fault of this file.
_RECEIVER: dict[str, AlertReceiver] = {}
# Alerts that page for a node, its Ray or its GCS: a fault that heals itself must not fire one.
NODE_ALERTS = ("RayHeadDown", "RayWorkerDown", "RayGcsDown", "RayNodeNotAlive")


@pytest.fixture(scope="module", autouse=True)
def _alert_receiver_closed():
    yield
    if "receiver" in _RECEIVER:
        _RECEIVER.pop("receiver").close()


@pytest.fixture(autouse=True)
def alerts(rayvars) -> AlertReceiver:
    """The receiver listening on the port of the inventory's webhook receiver."""
    if "receiver" not in _RECEIVER:
        urls = [
            hook["url"]
            for receiver in rayvars["prometheus_alertmanager_receivers"]
            for hook in receiver.get("webhook_configs", [])
        ]
        assert urls, "the scenario's inventory names no webhook receiver"
        _RECEIVER["receiver"] = AlertReceiver(urllib.parse.urlsplit(urls[0]).port)
    return _RECEIVER["receiver"]


def duration_s(text: str) -> float:
    """Seconds of a Prometheus duration (2m, 1m30s, 15s)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", str(text)))


def alert_delay_s(rayvars) -> float:
    """How long after a node goes down its alert reaches the receivers at most: the rule's
    for:, a scrape and an evaluation before it (each one interval), Alertmanager's
    group_wait, and a few seconds of delivery."""
    return (
        duration_s(rayvars["prometheus_alert_down_for"])
        + 2 * duration_s(rayvars["prometheus_scrape_interval"])
        + duration_s(rayvars["prometheus_alertmanager_group_wait"])
        + 15
    )


def resolve_delay_s(rayvars) -> float:
    """How long after a node is back its alert's resolution reaches the receivers at most: a
    scrape and an evaluation, Alertmanager's group_interval, and delivery."""
    return (
        2 * duration_s(rayvars["prometheus_scrape_interval"])
        + duration_s(rayvars["prometheus_alertmanager_group_interval"])
        + 15
    )


@pytest.fixture
def nodes(host):
    groups = host.ansible.get_variables()["groups"]
    head = groups["ray_head"][0]
    hosts = {name: peer(host, name) for name in [head, *groups["ray_workers"]]}
    balancers = {name: peer(host, name) for name in groups.get("load_balancer", [])}
    return {
        "head": head,
        "workers": list(groups["ray_workers"]),
        "hosts": hosts,
        "ips": {name: h.check_output(IP_CMD) for name, h in hosts.items()},
        "balancers": {name: h.check_output(IP_CMD) for name, h in balancers.items()},
        "balancer_hosts": balancers,
    }


@pytest.fixture
def app(rayvars):
    """The first application with a smoke test: its request is the load."""
    return next(a for a in rayvars["ray_serve_applications"] if "smoke_test" in a)


class Targets(dict):
    """Target name -> URL, and the CA bundle its https:// URLs are verified against."""

    cafile: str | None = None

    def plus(self, name: str, url: str) -> Targets:
        out = Targets({**self, name: url})
        out.cafile = self.cafile
        return out

    def without(self, name: str) -> Targets:
        out = Targets({key: url for key, url in self.items() if key != name})
        out.cafile = self.cafile
        return out


@pytest.fixture
def targets(nodes, rayvars, app, host):
    """Every node's Serve port, and the load balancer's HTTPS port when the inventory gives it
    a certificate (its plain HTTP port redirects there), else its HTTP port."""
    out = Targets({name: smoke_url(ip, rayvars, app) for name, ip in nodes["ips"].items()})
    for name, ip in nodes["balancers"].items():
        url, cafile = balancer_url(peer(host, name), ip, rayvars, app)
        out[name], out.cafile = url, cafile or out.cafile
    return out


def balancer_url(balancer, ip: str, rayvars, app) -> tuple[str, str | None]:
    """The URL of APP's smoke-test request through the load balancer BALANCER at IP, and the
    CA bundle that verifies it: HTTPS with the certificate the inventory names (templated on
    the controller, as the role reads it), else plain HTTP."""
    cafile = inventory_value(balancer, "load_balancer_tls_certificate")
    if cafile:
        return f"https://{ip}:{rayvars['load_balancer_tls_port']}{smoke_path(app)}", cafile
    return f"http://{ip}:{rayvars['load_balancer_port']}{smoke_path(app)}", None


def smoke_url(ip: str, rayvars, app) -> str:
    """The URL of APP's smoke-test request on the Serve port at IP."""
    return f"http://{ip}:{rayvars['ray_serve_http_port']}{smoke_path(app)}"


def serving_steadily(client: LoadClient, names, since: float) -> bool:
    """Every named target answered only 2xx during the last STEADY_S seconds (after SINCE)."""
    now = client.now()
    if now - since < STEADY_S:
        return False
    window = [s for s in list(client.samples) if s.sent >= max(since, now - STEADY_S)]
    for name in names:
        mine = [s for s in window if s.target == name]
        if not mine or any(s.outcome != "ok" for s in mine):
            return False
    return True


def under_load(targets, app, fault, limit_s: float, joining=()):
    """Runs FAULT (a callable taking the client, returning a dict of facts) under load; returns
    (reports since the fault, facts, the client). Waits until every node serves steadily or
    LIMIT_S passes. facts["fault_at"] is when the fault started, on the client's clock (FAULT
    may return a later one: a fault it had to make again).
    Targets named in JOINING need not serve before the fault (a node the fault adds)."""
    body = json.dumps(app["smoke_test"]["body"]).encode()
    with LoadClient(
        targets,
        body,
        max_requests=LOAD_LIMIT_REQUESTS,
        max_seconds=LOAD_LIMIT_S,
        cafile=getattr(targets, "cafile", None),
    ) as client:
        time.sleep(BASELINE_S)
        base = report(list(client.samples))
        assert all(
            r.total > 0 and (r.failed == 0 or name in joining) for name, r in base.items()
        ), describe(base)
        facts = {"fault_at": client.now(), **(fault(client) or {})}
        t_fault = facts["fault_at"]
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not serving_steadily(client, targets, t_fault):
            time.sleep(1)
        client.covered()
    return report(client.samples, since=t_fault), facts, client


def unit_active_at(node_host, unit: str, client: LoadClient) -> float | None:
    """When UNIT last became active, in seconds on the load client's clock (containers share
    the kernel's monotonic clock with this process)."""
    out = node_host.check_output(f"systemctl show {unit} -p ActiveEnterTimestampMonotonic")
    usec = int(out.split("=", 1)[1] or 0)
    return usec / 1e6 - client._t0 if usec else None


def wait_active(node_host, unit: str, timeout: float = 180) -> None:
    """Waits until UNIT is active on NODE_HOST, through a boot: until sshd answers, the
    connection fails (testinfra raises RuntimeError), which counts as not active yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if node_host.run(f"systemctl is-active {unit}").stdout.strip() == "active":
                return
        except RuntimeError:
            pass
        assert time.monotonic() < deadline, f"{unit} not active after {timeout} s"
        time.sleep(1)


def reboot(name: str) -> None:
    """Reboots host NAME the way a container can: `docker restart` (systemd, PID 1, shuts
    every unit down in order, then the container boots again). Molecule names each container
    after its inventory host."""
    subprocess.run(["docker", "restart", "--timeout", "120", name], check=True, timeout=240)


def kill_head_unit(nodes, unit):
    nodes["hosts"][nodes["head"]].run_test(f"systemctl kill --signal=KILL {unit}")


def kill_gcs(nodes, unit):
    # The GCS alone: `ray start --block` notices its critical process died and exits.
    nodes["hosts"][nodes["head"]].run_test("pkill --signal KILL --exact gcs_server")


def reboot_head(nodes, unit):
    reboot(nodes["head"])


@pytest.mark.parametrize(
    "fault",
    [kill_head_unit, kill_gcs, reboot_head],
    ids=["head-unit-kill-9", "gcs-process-kill-9", "head-reboot"],
)
def test_head_fault_workers_lose_nothing_and_head_serves_again(nodes, targets, app, rayvars, fault):
    """The head's unit killed, its GCS process killed, or the head rebooted: the workers'
    ports and the load balancer lose nothing (GCS fault tolerance keeps them serving), and
    the head's own port serves again within 60 s of its unit being active, with no operator
    command."""
    head = nodes["hosts"][nodes["head"]]
    unit = rayvars["ray_head_service_name"]

    def head_fault(client):
        before = unit_active_at(head, unit, client)
        fault(nodes, unit)
        time.sleep(rayvars["ray_head_restart_sec"] + 2)
        wait_active(head, unit)
        return {"before": before}

    reports, facts, client = under_load(targets, app, head_fault, limit_s=240)
    print(describe(reports))
    for name in [*nodes["workers"], *nodes["balancers"]]:
        assert reports[name].failed == 0, describe(reports)
    active = unit_active_at(head, unit, client)
    assert active is not None
    assert active != facts["before"], "the head unit did not restart"
    served = reports[nodes["head"]].recovered_after
    assert served is not None, describe(reports)
    # The head's port serves again within 60 s of its unit being active again.
    after_active = facts["fault_at"] + served - active
    print(
        f"head unit active {active - facts['fault_at']:.1f} s after the fault; "
        f"its port serving {after_active:.1f} s after that"
    )
    assert after_active <= 60, describe(reports)


def stop_ray_under_unit(node_host, unit: str) -> None:
    """What Ray's own `ray stop` does to a node, made without running it (on this machine it
    would stop every Ray process of every container): SIGTERM to each process of the unit but
    its main one, `ray start --block`, which takes a child's SIGTERM exit as graceful and stays
    (so systemd sees the unit active), and Serve's HAProxy, which `ray stop` does not look for
    (so it outlives its Ray)."""
    node_host.run_test(
        f"main=$(systemctl show -p MainPID --value {unit}); "
        f"for f in $(grep -l '/{unit}[.]service' /proc/[0-9]*/cgroup 2>/dev/null); do "
        "p=${f#/proc/}; p=${p%/cgroup}; "
        '[ "$p" = "$main" ] || [ "$(cat /proc/$p/comm 2>/dev/null)" = haproxy ] '
        '|| kill -TERM "$p" 2>/dev/null; done; true'
    )


def ray_stopped_and_unit_kept(node_host, unit: str) -> bool:
    """stop_ray_under_unit; whether it left UNIT active with the same main process (its Ray
    dead under it). Ray's raylet sometimes aborts on SIGTERM instead (exit -6, seen in clean
    CI runs): `ray start --block` takes that as unexpected and ends, systemd starts the unit
    again, and the node heals by the unit's own Restart=, not by what the test watches for.
    Looked at 5 s after the stop: `ray start --block` notices a child's exit within a second
    or two, and the liveness watchdog restarts nothing before its third failure (15 s)."""
    main = node_host.check_output(f"systemctl show -p MainPID --value {unit}")
    stop_ray_under_unit(node_host, unit)
    time.sleep(5)
    state = node_host.run(f"systemctl is-active {unit}").stdout.strip()
    return (
        state == "active"
        and node_host.check_output(f"systemctl show -p MainPID --value {unit}") == main
    )


# Seconds within which a node whose Ray was stopped under its unit serves again, with no
# command: the liveness watchdog's worst case (ray_liveness_failures x (interval + timeout),
# 30 s with the defaults) plus Ray's start and Serve's proxy on the node.
RAY_STOPPED_SERVES_S = 60
# The whole cluster at once (the head too): Serve's controller, every replica and every proxy
# start again after the GCS does; measured, and bounded here, not held to the single node's.
RAY_STOPPED_EVERYWHERE_SERVES_S = 90


def kill_raylet(node_host, unit: str) -> None:
    node_host.run_test("pkill --signal KILL --exact raylet")


def kill_serve_haproxy(node_host, unit: str) -> None:
    node_host.run_test("pkill --signal KILL --exact haproxy")


# fault id: (nodes hit: one worker or every node, what is done to each, whether the unit must
# restart: Ray's processes stopped leave `ray start --block` running, so only the liveness
# watchdog restarts the unit; a killed raylet takes `ray start` with it; a killed Serve HAProxy
# is Serve's to start again, the unit may stay).
NODE_FAULTS = {
    "ray-stop-one-worker": ("one-worker", stop_ray_under_unit, "watchdog"),
    "ray-stop-every-node": ("every-node", stop_ray_under_unit, "restart"),
    "raylet-kill-9": ("one-worker", kill_raylet, "restart"),
    "serve-haproxy-kill-9": ("one-worker", kill_serve_haproxy, None),
}


@pytest.mark.parametrize("fault_id", list(NODE_FAULTS))
def test_ray_stopped_under_an_active_unit_comes_back_without_a_human(
    nodes, targets, app, rayvars, fault_id
):
    """Ray's processes stopped as Ray's `ray stop` stops them, under units systemd still
    reports active, on one worker or on every node at once; a worker's raylet or its Serve
    HAProxy killed: the liveness watchdog or the unit restarts what died (the whole control
    group: no HAProxy left over), and every node serves again with no operator command. With
    one worker hit, the other nodes and the load balancer lose nothing."""
    where, action, restarts = NODE_FAULTS[fault_id]
    head, workers = nodes["head"], nodes["workers"]
    units = {head: rayvars["ray_head_service_name"]}
    units.update(dict.fromkeys(workers, rayvars["ray_worker_service_name"]))
    hit = [workers[0]] if where == "one-worker" else [head, *workers]
    limit = RAY_STOPPED_SERVES_S if where == "one-worker" else RAY_STOPPED_EVERYWHERE_SERVES_S

    def fault(client):
        for _ in range(3):
            at = client.now()
            before = {n: unit_active_at(nodes["hosts"][n], units[n], client) for n in hit}
            haproxy = {n: haproxy_pids(nodes["hosts"][n]) for n in hit}
            if restarts != "watchdog":
                for name in hit:
                    action(nodes["hosts"][name], units[name])
                return {"fault_at": at, "before": before, "haproxy": haproxy}
            (name,) = hit
            if ray_stopped_and_unit_kept(nodes["hosts"][name], units[name]):
                return {"fault_at": at, "before": before, "haproxy": haproxy}
            # systemd, not the watchdog, started the unit again: once the node serves and its
            # watchdog has seen it answer, the fault is made again, its clock from then.
            assert wait_until(
                lambda at=at, name=name: (
                    serving_steadily(client, targets, at)
                    and watchdog_saw_it_answer(nodes["hosts"][name], units[name])
                ),
                timeout=120,
                step=2,
            ), describe(report(list(client.samples), since=at))
        raise AssertionError(f"{units[name]}'s Ray never stayed stopped under its active unit")

    reports, facts, client = under_load(targets, app, fault, limit_s=limit + 30)
    print(describe(reports))
    for name in hit:
        active = unit_active_at(nodes["hosts"][name], units[name], client)
        if restarts:
            assert active not in (None, facts["before"][name]), f"{units[name]} on {name} kept"
        if restarts == "watchdog":
            journal = nodes["hosts"][name].check_output(
                f"journalctl -u {units[name]}-liveness --since '-10min' --no-pager"
            )
            assert f"restarting {units[name]}.service" in journal, journal[-3000:]
        served = reports[name].recovered_after
        print(
            f"{name}: unit active {active - facts['fault_at']:.1f} s after the fault, "
            f"serving {served} s after it"
        )
        assert served is not None, describe(reports)
        assert served <= limit, describe(reports)
    if where == "one-worker":
        for name in nodes["balancers"]:
            # Killed with -9, a node's ingress resets the connections it had accepted, some
            # with a request already sent; Debian 12's HAProxy (2.6) retries a connection the
            # node closed without an answer, but answers 502 for one it reset (README, health
            # contract). At most that one request.
            lost = reports[name].outcomes.get("http 502", 0) if action is kill_serve_haproxy else 0
            assert reports[name].failed - lost == 0, describe(reports)
            assert lost <= 1, describe(reports)
        # The other nodes' own ports: nothing but a request that was in flight to a replica
        # on the node when its Ray died (the load balancer sends such a one again).
        for name in [head, *workers[1:]]:
            assert only_in_flight_lost(reports[name]), describe(reports)
    for name in hit:  # nothing of the old Ray is left: no HAProxy from before the fault
        left = haproxy_pids(nodes["hosts"][name]) & facts["haproxy"][name]
        assert not left, (name, left)


# What a node's own port answers a request that was in flight to a replica whose Ray died:
# the connection reset, or Serve's 500 (its ingress answers a replica that died mid-request
# so; docs/load-balancer.md). A load balancer sends either again.
IN_FLIGHT_LOST = ("reset", "http 500")


def only_in_flight_lost(target_report) -> bool:
    """TARGET_REPORT (a node's own port) lost nothing but requests in flight when a replica
    died: IN_FLIGHT_LOST answers only, at most two (the one in flight when its Ray died, and
    one routed to the dead replica before Serve knew)."""
    outcomes = target_report.outcomes
    lost = sum(outcomes.get(o, 0) for o in IN_FLIGHT_LOST)
    return set(outcomes) <= {"ok", *IN_FLIGHT_LOST} and lost <= 2


def haproxy_pids(node_host) -> set[str]:
    return set(node_host.run("pgrep -x haproxy").stdout.split())


def test_failed_deploy_rolls_back_without_losing_a_request(
    host, nodes, targets, app, rayvars, dashboard, alerts
):
    """A deploy that cannot fit (more replicas than the cluster has CPUs for) fails after
    ray_serve_deploy_timeout and is replaced by the last healthy config: Serve targets the
    configured replicas again within ray_serve_deploy_timeout + 60 s of taking the failed
    config (read from the dashboard, so the playbook's own preflight and rendering, which
    take longer on a busy machine, are not counted). While it tries, the application is not
    RUNNING and its deployment below target for longer than the rules' for: both alerts
    reach the webhook receiver before the rollback."""
    # Long enough for the Serve alerts to fire and be sent: their for:, a scrape and an
    # evaluation on either side, Alertmanager's group_wait, delivery.
    timeout_s = round(
        max(
            40,
            duration_s(rayvars["prometheus_alert_serve_for"])
            + 3 * duration_s(rayvars["prometheus_scrape_interval"])
            + duration_s(rayvars["prometheus_alertmanager_group_wait"])
            + 15,
        )
    )
    too_many = 64
    too_big = json.loads(json.dumps(rayvars["ray_serve_applications"]))
    for application in too_big:
        if application["name"] != app["name"]:
            continue  # the other applications' configs stay as they run
        for deployment in application.get("deployments", []):
            deployment["num_replicas"] = too_many
    extra = {"ray_serve_applications": too_big, "ray_serve_deploy_timeout": timeout_s}
    first = app["deployments"][0]
    run = {}

    def bad_deploy(client):
        run["done"] = run_playbook(
            host, "site.yml", "--tags", "serve", "-e", json.dumps(extra), check=False
        )
        return {"finished": client.now()}

    started = time.monotonic()
    with TargetWatch(dashboard, app["name"], first["name"]) as watch:
        reports, facts, _ = under_load(targets, app, bad_deploy, limit_s=timeout_s + 60)
    done = run["done"]
    over = time.monotonic()
    fired = {
        name: alerts.first("firing", started, alertname=name, application=app["name"], **labels)
        for name, labels in (
            ("RayServeApplicationNotRunning", {}),
            ("RayServeDeploymentBelowTarget", {"deployment": first["name"]}),
        )
    }
    print(
        "alerts at the receiver, s into the run: "
        + ", ".join(f"{k} {'-' if v is None else f'{v - started:.1f}'}" for k, v in fired.items())
    )
    print(describe(reports))
    taken = watch.first_at(too_many)
    restored = watch.first_at(first["num_replicas"], after=taken) if taken else None
    print(f"the run took {facts['finished'] - facts['fault_at']:.1f} s")
    if taken and restored:
        print(
            f"the failed config taken {taken - watch.t0:.1f} s into the run; the configured "
            f"replicas targeted again {restored - taken:.1f} s after that"
        )
    assert done.returncode != 0, done.stdout[-4000:]
    assert "Rolled back to the last config that became healthy" in done.stdout, done.stdout[-6000:]
    assert "it serves again" in done.stdout, done.stdout[-6000:]
    assert all(r.failed == 0 for r in reports.values()), describe(reports)
    assert taken is not None, watch.seen
    assert restored is not None, watch.seen
    assert restored - taken <= timeout_s + 60, (taken, restored)
    status, body = dashboard.get("/api/serve/applications/")
    assert status == 200, body
    deployment = body["applications"][app["name"]]["deployments"][first["name"]]
    assert deployment["target_num_replicas"] == first["num_replicas"], deployment
    for name, at in fired.items():
        assert at is not None, (name, alerts.seen[-20:])
        assert at <= over, (name, at - started, over - started)


class DashboardWatch:
    """Reads the dashboard's Serve applications twice a second in a thread, until stopped,
    handing each answer to observe(status, body)."""

    def __init__(self, dashboard):
        self.dashboard = dashboard
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def observe(self, status, body) -> None:
        raise NotImplementedError

    def _run(self):
        while not self._stop.wait(0.5):
            self.observe(*self.dashboard.get("/api/serve/applications/"))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)


class TargetWatch(DashboardWatch):
    """One deployment's target_num_replicas over time (monotonic seconds): when Serve took a
    config, as seen from outside."""

    def __init__(self, dashboard, application: str, deployment: str):
        super().__init__(dashboard)
        self.application, self.deployment = application, deployment
        self.seen: list[tuple[float, int]] = []
        self.t0 = time.monotonic()

    def observe(self, status, body) -> None:
        if status != 200 or not isinstance(body, dict):
            return
        state = body.get("applications", {}).get(self.application, {})
        deployment = state.get("deployments", {}).get(self.deployment)
        if deployment and "target_num_replicas" in deployment:
            self.seen.append((time.monotonic(), deployment["target_num_replicas"]))

    def first_at(self, target: int, after: float | None = None) -> float | None:
        """When the deployment first targeted TARGET replicas (after AFTER), or None."""
        return next((t for t, n in self.seen if n == target and (after is None or t > after)), None)


def alive_node_ids(dashboard, ip: str) -> set[str]:
    """Node ids of the ALIVE Ray nodes at IP (the old node of a restarted host stays listed,
    DEAD, beside the new one)."""
    status, body = dashboard.get("/nodes?view=summary")
    assert status == 200, body
    return {
        n["raylet"]["nodeId"]
        for n in body["data"]["summary"]
        if n["raylet"]["state"] == "ALIVE" and n["raylet"]["nodeManagerAddress"] == ip
    }


def restart_worker_unit(nodes, worker, unit):
    nodes["hosts"][worker].run_test(f"systemctl restart {unit}")
    exit_s, inactive_s = stop_times(nodes["hosts"][worker], unit)
    return {"stop_s": inactive_s - exit_s, "stopped_at": inactive_s}


def stop_times(node_host, unit: str) -> tuple[float, float]:
    """When UNIT's last stop began (left active: SIGTERM, Ray's drain starts) and ended
    (inactive: every process gone), on the kernel's monotonic clock, which the containers
    share with this process."""
    out = node_host.check_output(
        f"systemctl show {unit} -p ActiveExitTimestampMonotonic -p InactiveEnterTimestampMonotonic"
    )
    props = dict(line.split("=", 1) for line in out.splitlines())
    return int(props["ActiveExitTimestampMonotonic"]) / 1e6, int(
        props["InactiveEnterTimestampMonotonic"]
    ) / 1e6


def reboot_worker(nodes, worker, unit):
    reboot(worker)


# The scenario's second application (tests/apps/echo): a request with ?delay_s= stays in flight
# on its one replica for that long.
ECHO_APP = "rayforge-echo"
SLOW_REQUEST_S = 20


def replica_node_ips(dashboard, application: str, deployment: str) -> set[str]:
    """The addresses of the nodes where DEPLOYMENT of APPLICATION has a RUNNING replica."""
    status, body = dashboard.get("/api/serve/applications/")
    assert status == 200, body
    state = body["applications"][application]["deployments"][deployment]
    return {r["node_ip"] for r in state["replicas"] if r["state"] == "RUNNING"}


def slow_requests(urls: dict[str, str], body) -> tuple[dict, list[threading.Thread]]:
    """Starts one request per URL in threads: name -> (status, answer, done on the monotonic
    clock), filled as each ends."""
    results: dict = {}

    def one(name, url):
        status, answer = http(url, method="POST", body=body, timeout=SLOW_REQUEST_S + 60)
        results[name] = (status, answer, time.monotonic())

    threads = [threading.Thread(target=one, args=item, daemon=True) for item in urls.items()]
    for thread in threads:
        thread.start()
    return results, threads


@pytest.mark.parametrize(
    ("fault", "down"),
    [(restart_worker_unit, {"refused"}), (reboot_worker, {"refused", "unreachable"})],
    ids=["worker-unit-restart", "worker-reboot"],
)
def test_worker_fault_drains_first_and_is_only_down_while_down(
    nodes, targets, app, rayvars, dashboard, fault, down
):
    """A restarted or rebooted worker drains (its gate refuses new connections), is down, and
    takes requests again only once it routes them: its clients see refused connections (and,
    while the host itself is down, no route to it) and nothing else; the other nodes and the
    load balancer lose nothing; it rejoins as a new Ray node (a new node id) and the
    application is back to its configured replicas.

    The restart is of the worker that runs the echo application's one replica, while a
    SLOW_REQUEST_S request is in flight to it through that worker's own port and through the
    head's: both complete, and the unit stops within 10 s of the last one's answer (the drain
    waits for the replica, not for Ray's deadline)."""
    echo = next(a for a in rayvars["ray_serve_applications"] if a["name"] == ECHO_APP)
    slow = fault is restart_worker_unit
    if slow:
        on = replica_node_ips(dashboard, ECHO_APP, echo["deployments"][0]["name"])
        worker = next(w for w in nodes["workers"] if nodes["ips"][w] in on)
    else:
        worker = nodes["workers"][0]
    unit = rayvars["ray_worker_service_name"]
    ip = nodes["ips"][worker]
    before = alive_node_ids(dashboard, ip)
    assert len(before) == 1, before

    def worker_fault(client):
        if not slow:
            return fault(nodes, worker, unit)
        urls = {
            name: smoke_url(nodes["ips"][name], rayvars, echo) + f"?delay_s={SLOW_REQUEST_S}"
            for name in (worker, nodes["head"])
        }
        results, threads = slow_requests(urls, echo["smoke_test"]["body"])
        time.sleep(2)  # in flight on the replica before the stop starts
        facts = fault(nodes, worker, unit)
        for thread in threads:
            thread.join(SLOW_REQUEST_S + 90)
        return {**facts, "slow": results}

    reports, facts, _ = under_load(targets, app, worker_fault, limit_s=180)
    print(describe(reports))
    if "stop_s" in facts:
        # The drain ends once the node is idle (its replicas run elsewhere, its proxy anchor
        # replica let go), not at Ray's drain deadline.
        print(f"{worker}: its unit stopped (drained) in {facts['stop_s']:.1f} s")
        assert facts["stop_s"] < rayvars["ray_drain_timeout"], facts
    if slow:
        answers = facts["slow"]
        print({name: answer[:2] for name, answer in answers.items()})
        assert set(answers) == {worker, nodes["head"]}, answers
        for status, answer, _ in answers.values():
            assert status == 200, answers
            assert answer["echo"] == echo["smoke_test"]["body"], answers
        last_answer = max(done for _, _, done in answers.values())
        stopped = facts["stopped_at"] - last_answer
        print(f"{worker}: stopped {stopped:.1f} s after the last slow request's answer")
        assert stopped <= 10, facts
    for name, r in reports.items():
        if name != worker:
            assert r.failed == 0, describe(reports)
    mine = reports[worker]
    assert set(mine.outcomes) <= {"ok", *down}, describe(reports)
    assert mine.recovered_after is not None, describe(reports)
    assert mine.recovered_after <= 90, describe(reports)
    # The dashboard marks the old node DEAD within a few seconds of its raylet leaving.
    deadline = time.monotonic() + 30
    while (after := alive_node_ids(dashboard, ip)) & before and time.monotonic() < deadline:
        time.sleep(2)
    assert after, f"{worker} did not rejoin"
    assert not after & before, f"{worker}'s old Ray node {before} is still ALIVE: {after}"
    status, body = dashboard.get("/api/serve/applications/")
    assert status == 200, body
    for deployment in app["deployments"]:
        state = body["applications"][app["name"]]["deployments"][deployment["name"]]
        running = [r for r in state["replicas"] if r["state"] == "RUNNING"]
        assert len(running) == deployment["num_replicas"], state


def test_firewall_reload_loses_nothing(nodes, targets, app, rayvars):
    """Reloading the firewall on every node in turn (nftables replaces the table at once; the
    Serve gate's set comes back empty, which a ready node wants) loses no request anywhere."""
    unit = rayvars["ray_firewall_service_name"]

    def reload_all(client):
        for name in [nodes["head"], *nodes["workers"]]:
            nodes["hosts"][name].run_test(f"systemctl reload-or-restart {unit}")
            time.sleep(1)

    reports, _, _ = under_load(targets, app, reload_all, limit_s=60)
    print(describe(reports))
    assert all(r.failed == 0 for r in reports.values()), describe(reports)


def member_set_admits(node_host, table: str, ip: str) -> bool:
    return node_host.run(f"nft get element inet {table} members '{{ {ip} }}'").rc == 0


# Seconds within which a node that was down during a deploy serves again after its Ray unit
# is active, with no site.yml (the reconciler's settle polls, Ray's start, Serve's proxy).
REJOIN_SERVES_S = 90


def spare_host(host, rayvars, app, tmp_path) -> dict:
    """The scenario's spare (a bare host, nothing of Ray on it) as the operator adds it: the
    inventory source that lists it in ray_workers (after the scenario's own, so it adds to the
    group), and the arguments of remove-worker.yml that take it out again."""
    groups = host.ansible.get_variables()["groups"]
    name = groups[SPARE_GROUP][0]
    node = peer(host, name)
    ip = node.check_output(IP_CMD)
    joined = tmp_path / "joined.yml"
    joined.write_text(json.dumps({"ray_workers": {"hosts": {name: {}}}}))
    inventory = ("-i", str(joined))
    removed = json.dumps({"ray_removed_workers": [name]})
    return {
        "name": name,
        "host": node,
        "ip": ip,
        "url": smoke_url(ip, rayvars, app),
        "inventory": inventory,
        "removal": ("playbooks/remove-worker.yml", *inventory, "-e", removed),
        "in_member_cidrs": any(
            ipaddress.ip_address(ip) in ipaddress.ip_network(c, strict=False)
            for c in rayvars["ray_firewall_member_cidrs"]
        ),
    }


def watchdog_saw_it_answer(node_host, unit: str) -> bool:
    """Whether UNIT's liveness watchdog has seen its Ray answer in the unit's current start
    (its --state file, named in its command line, holds that start's time): until then a Ray
    that does not answer counts as still starting, and a run waits for it instead of
    restarting the unit."""
    argv = node_host.check_output(f"systemctl show {unit}-liveness -p ExecStart --value")
    state = re.search(r"--state=(\S+)", argv)
    assert state, argv
    recorded = node_host.run(f"cat {state.group(1)}").stdout.strip()
    started = node_host.check_output(
        f"systemctl show {unit} -p ActiveEnterTimestampMonotonic --value"
    )
    return recorded == started.strip() != "0"


def ray_dead_under_active_unit(node_host, unit: str, attempts: int = 3) -> None:
    """ray_stopped_and_unit_kept, until it leaves UNIT active with its Ray dead, UNIT's liveness
    watchdog stopped. When systemd restarted the unit instead, the watchdog runs until it has
    seen the new start answer, and the fault is made again."""
    for _ in range(attempts):
        if ray_stopped_and_unit_kept(node_host, unit):
            return
        node_host.run_test(f"systemctl start {unit}-liveness")
        assert wait_until(lambda: watchdog_saw_it_answer(node_host, unit), timeout=120, step=2)
        node_host.run_test(f"systemctl stop {unit}-liveness")
    raise AssertionError(f"{unit}'s Ray never stayed dead under its active unit")


def test_host_out_for_repair_a_new_host_joins_and_one_run_brings_it_back(
    host, nodes, targets, app, rayvars, dashboard, tmp_path, alerts
):
    """A worker's host is down (stopped, as for a repair), and the operator puts a new host
    (the scenario's spare: a bare host, nothing of Ray on it) in ray_workers. Left out with
    --limit 'all:!<worker>', restart-serve.yml restarts Serve on the other nodes (its config
    rendered for the nodes alive, not the last site.yml's count); then one site.yml rolls a
    Serve config change out to them and joins the new host, under load: the running nodes and
    the load balancer lose nothing, and the new host serves within JOIN_SERVES_S of its Ray
    unit becoming active. In both runs the inventory names the worker by a DNS name (one that
    resolves nowhere), as real sites do: its address comes from the head's record, and it is
    never contacted. Back up, its port serves again within REJOIN_SERVES_S of its Ray unit
    being active, with no site.yml; then one site.yml on the whole inventory brings it in line:
    the inventory's config returns, and every node's firewall admits the new host.

    Before that run, the worker's Ray dies again under its active unit, its liveness watchdog
    stopped (so only the run can notice): the run says what it found, restarts the unit
    instead of waiting for the node to join, starts the watchdog again and ends with every node
    serving; the load balancer and the other nodes lose nothing. (Not another worker: with the
    worker away, Serve put every replica on the others, and moves none back when it returns.)

    Last, remove-worker.yml takes the new host out under load: nothing is lost; its unit is
    stopped and disabled, no remaining node's firewall admits it, Prometheus no longer scrapes
    it, and no replica runs on it. (One site.yml for the change and the join: each run on the
    whole cluster costs the scenario minutes.)

    Alerting, end to end: the stopped worker's RayWorkerDown reaches the webhook receiver
    within alert_delay_s() of the host going down, and its resolution within
    resolve_delay_s() of the node serving again."""
    worker = nodes["workers"][-1]
    unit = rayvars["ray_worker_service_name"]
    node = nodes["hosts"][worker]
    spare = spare_host(host, rayvars, app, tmp_path)
    new = spare["name"]
    assert spare["host"].run(f"systemctl cat {unit}").rc != 0, f"{new} is not a new host"
    by_name = tmp_path / "by-name.yml"
    by_name.write_text(
        yaml.safe_dump({"all": {"hosts": {worker: {"ansible_host": f"{worker}.rayforge.invalid"}}}})
    )
    limited = ["-i", str(by_name), "--limit", f"all:!{worker}"]
    changed = json.loads(json.dumps(rayvars["ray_serve_applications"]))
    mine = next(a for a in changed if a["name"] == app["name"])
    args = mine.setdefault("args", {})
    args["max_items"] = args.get("max_items", 10000) - 1  # a change Serve rolls out
    others = targets.without(worker)
    run = {}

    def change(client):
        run["change"] = run_playbook(
            host,
            "site.yml",
            *limited,
            *spare["inventory"],
            "-e",
            json.dumps({"ray_serve_applications": changed}),
            check=False,
        )

    def back(client):
        node.run_test(f"systemctl stop {unit}-liveness")
        ray_dead_under_active_unit(node, unit)
        before = unit_active_at(node, unit, client)
        run["back"] = run_playbook(host, "site.yml", *spare["inventory"], check=False)
        return {"before": before}

    def remove(client):
        run["remove"] = run_playbook(host, *spare["removal"], check=False)

    def all_serve(names):
        body = app["smoke_test"]["body"]
        return all(
            http(targets[name], method="POST", body=body, cafile=targets.cafile)[0] == 200
            for name in names
        )

    down_at = time.monotonic()
    subprocess.run(["docker", "stop", "--time", "120", worker], check=True, timeout=240)
    paged = None
    try:
        try:
            # The operator sees the host down (its Ray node no longer ALIVE: the GCS can take
            # a few health checks to notice a host that went away), then works without it.
            assert wait_until(lambda: not alive_node_ids(dashboard, nodes["ips"][worker]), 120)
            # Serve restarted before any site.yml ran without the worker (a Serve outage by
            # design, so not under load): the anchor must not wait for a replica on the
            # stopped host.
            restarted = run_playbook(host, "playbooks/restart-serve.yml", *limited, check=False)
            assert restarted.returncode == 0, (
                f"{restarted.stdout[-6000:]}\n{restarted.stderr[-2000:]}"
            )
            assert ".rayforge.invalid" not in restarted.stdout, (
                "the host out for repair was contacted"
            )
            assert wait_until(lambda: all_serve(others), timeout=60, step=2), "not serving again"
            reports, join_facts, join_client = under_load(
                others.plus(new, spare["url"]),
                app,
                change,
                limit_s=JOIN_SERVES_S,
                joining=(new,),
            )
            print("without the worker, the new host joining:", describe(reports), sep="\n")
            status, body = dashboard.get("/api/serve/applications/")
            # Still down: the page arrives (now, or once the rule's for: has passed).
            paged = alerts.wait(
                "firing",
                timeout=max(0, down_at + alert_delay_s(rayvars) - time.monotonic()),
                after=down_at,
                alertname="RayWorkerDown",
                node=worker,
            )
        finally:
            # Back, whatever happened above: the host boots (its Ray unit rejoins by itself),
            # and one site.yml on the whole inventory, under load, puts the inventory's config
            # back and gives the host its proxy again; the tests after this one need all three
            # nodes.
            subprocess.run(["docker", "start", worker], check=True, timeout=120)
            wait_active(node, unit)
            active = time.monotonic()
            # Its port serves again with no site.yml: the reconciler gives the node back its
            # proxy anchor replica, and with it Serve's proxy.
            rejoined = wait_until(lambda: all_serve([worker]), timeout=REJOIN_SERVES_S, step=1)
            serving_at = time.monotonic()
            rejoined_s = serving_at - active
            # A Ray that dies under a unit past its start (as on a host that has run a while)
            # is what the run below must repair rather than wait on.
            watched = wait_until(lambda: watchdog_saw_it_answer(node, unit), timeout=120, step=2)
            back_reports, back_facts, back_client = under_load(
                targets.plus(new, spare["url"]), app, back, limit_s=90
            )
        print(f"{worker}: serving {rejoined_s:.1f} s after its Ray unit was active again")
        assert rejoined, f"{worker} not serving {REJOIN_SERVES_S} s after its unit was active"
        assert watched, f"{worker}'s liveness watchdog never saw its Ray answer"
        assert paged is not None, (
            f"no RayWorkerDown for {worker} within {alert_delay_s(rayvars):.0f} s: {alerts.seen}"
        )
        print(f"{worker}: RayWorkerDown at the receiver {paged - down_at:.1f} s after it went down")
        resolved = alerts.wait(
            "resolved",
            timeout=max(0, serving_at + resolve_delay_s(rayvars) - time.monotonic()),
            after=paged,
            alertname="RayWorkerDown",
            node=worker,
        )
        assert resolved is not None, (
            f"RayWorkerDown for {worker} not resolved within {resolve_delay_s(rayvars):.0f} s "
            f"of it serving again: {alerts.seen}"
        )
        print(f"{worker}: resolved at the receiver {resolved - serving_at:.1f} s after it served")

        # The change and the join, without the worker.
        done = run["change"]
        assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
        assert ".rayforge.invalid" not in done.stdout, "the host out for repair was contacted"
        for name, r in reports.items():
            if name != new:
                assert r.failed == 0, describe(reports)
        assert status == 200, body
        deployed = body["applications"][app["name"]]["deployed_app_config"]
        assert deployed["args"]["max_items"] == args["max_items"], deployed
        served = reports[new].recovered_after
        assert served is not None, describe(reports)
        active_at = unit_active_at(spare["host"], unit, join_client)
        assert active_at is not None, f"{unit} never became active on {new}"
        since_active = join_facts["fault_at"] + served - active_at
        print(
            f"{new}: unit active {active_at - join_facts['fault_at']:.1f} s after the run "
            f"started, serving {since_active:.1f} s after that"
        )
        # The run's own length (preflight, the install on a bare host) grows with the
        # inventory and the machine's load; what this asserts is that the node serves, with no
        # other step, once Ray runs on it: the rest of the run (the workers' registration, the
        # Serve play that gives it the routes its gate waits for) within JOIN_SERVES_S.
        assert since_active <= JOIN_SERVES_S, describe(reports)

        # The worker brought back, its Ray dead again.
        print("bringing it back, its Ray dead again:", describe(back_reports), sep="\n")
        done = run["back"]
        assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
        assert f"{unit} was active but its Ray did not answer" in done.stdout, done.stdout[-6000:]
        assert unit_active_at(node, unit, back_client) not in (None, back_facts["before"])
        assert node.run(f"systemctl is-active {unit}-liveness").stdout.strip() == "active"
        for name in nodes["balancers"]:
            assert back_reports[name].failed == 0, describe(back_reports)
        # The other nodes' own ports: nothing but a request in flight to a replica on the
        # worker when its Ray died (the load balancer sends such a one again).
        for name in [*nodes["ips"], new]:
            if name != worker:
                assert only_in_flight_lost(back_reports[name]), describe(back_reports)
        assert back_reports[worker].recovered_after is not None, describe(back_reports)
        status, answer = http(targets[worker], method="POST", body=app["smoke_test"]["body"])
        assert status == 200, answer
        assert answer["scores"] == app["smoke_test"]["expect"]["scores"], answer
        table = rayvars["ray_firewall_table"]
        for name in nodes["hosts"]:
            admits = member_set_admits(nodes["hosts"][name], table, spare["ip"])
            assert spare["in_member_cidrs"] or admits, name
    except BaseException:
        # The tests after this one count the scenario's own nodes: the new host leaves,
        # whatever the failure was.
        run_playbook(host, *spare["removal"], check=False)
        raise

    reports, _, _ = under_load(targets, app, remove, limit_s=60)
    print("removal:", describe(reports), sep="\n")
    done = run["remove"]
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert all(r.failed == 0 for r in reports.values()), describe(reports)
    assert_removed(host, nodes, spare, rayvars, dashboard)


def assert_removed(host, nodes, spare, rayvars, dashboard) -> None:
    """What remove-worker.yml leaves of the spare: its unit stopped and disabled, no node's
    firewall admitting it, no Prometheus target on it, no replica serving on it."""
    unit = rayvars["ray_worker_service_name"]
    node, ip = spare["host"], spare["ip"]
    assert node.run(f"systemctl is-enabled {unit}").stdout.strip() == "disabled"
    assert node.run(f"systemctl is-active {unit}").stdout.strip() == "inactive"
    if not spare["in_member_cidrs"]:
        for name in nodes["hosts"]:
            assert not member_set_admits(nodes["hosts"][name], rayvars["ray_firewall_table"], ip)
    groups = host.ansible.get_variables()["groups"]
    monitor = (groups.get("monitoring") or groups["ray_head"])[0]
    status, body = http(
        f"http://{peer(host, monitor).check_output(IP_CMD)}:{rayvars['prometheus_port']}"
        "/api/v1/targets"
    )
    assert status == 200, body
    scraped = [t["labels"]["instance"] for t in body["data"]["activeTargets"]]
    assert not [t for t in scraped if t.split(":")[0] == ip], scraped
    status, body = dashboard.get("/api/serve/applications/")
    assert status == 200, body
    for name, state in body["applications"].items():
        assert state["status"] == "RUNNING", (name, state["status"], state["message"])
        for deployment in state["deployments"].values():
            on_it = [
                r
                for r in deployment["replicas"]
                if r.get("node_ip") == ip and r["state"] in SERVING_STATES
            ]
            assert not on_it, (name, on_it)


# Replica states Serve routes requests to: RUNNING, and PENDING_MIGRATION (a replica on a
# draining node, serving until its replacement elsewhere is RUNNING; Serve's
# get_running_replica_infos hands both to the routers).
SERVING_STATES = ("RUNNING", "PENDING_MIGRATION")


class ReplicaWatch(DashboardWatch):
    """Samples the serving replicas (SERVING_STATES) of every deployment of APPS from the
    dashboard twice a second in a thread, until stopped. Samples that say nothing of the
    replicas are counted, not guessed: the dashboard not answering (the head is down while
    it is upgraded), and a deployment not listed (for a second or two after a new config,
    while Serve builds the application, it is DEPLOYING with no deployments, its replicas
    still running and serving)."""

    def __init__(self, dashboard, apps):
        super().__init__(dashboard)
        self.apps = apps
        self.lowest: dict[str, int] = {}
        self.samples = self.unanswered = self.unlisted = 0

    def observe(self, status, body) -> None:
        if status != 200 or not isinstance(body, dict):
            self.unanswered += 1
            return
        self.samples += 1
        for application in self.apps:
            state = body.get("applications", {}).get(application["name"], {})
            for deployment in application.get("deployments", []):
                key = f"{application['name']}/{deployment['name']}"
                if deployment["name"] not in state.get("deployments", {}):
                    self.unlisted += 1
                    continue
                replicas = state["deployments"][deployment["name"]]
                running = sum(r["state"] in SERVING_STATES for r in replicas.get("replicas", []))
                self.lowest[key] = min(self.lowest.get(key, running), running)


def test_rolling_upgrade_of_an_app_build_loses_nothing(
    host, nodes, targets, app, rayvars, dashboard, tmp_path
):
    """upgrade.yml rolls a new build of the app out under load: the load balancer loses
    nothing, each node's own port only refuses while that node is drained or down, replicas
    never drop below the configured number minus one, and every node serves the new version
    afterwards."""
    # A copy of the app with a new version number stands in for the next release.
    shutil.copytree(ROOT / "app", tmp_path / "app")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    init = tmp_path / "app" / "src" / "salience" / "__init__.py"
    init.write_text(
        re.sub(r'(?m)^__version__ = "[^"]+"', '__version__ = "99.0.0"', init.read_text())
    )
    extra = json.dumps({"ray_node_app_projects": [str(tmp_path)]})
    run = {}

    def upgrade(client):
        run["done"] = run_playbook(host, "playbooks/upgrade.yml", "-e", extra, check=False)

    with ReplicaWatch(dashboard, rayvars["ray_serve_applications"]) as watch:
        reports, _, _ = under_load(targets, app, upgrade, limit_s=120)
    done = run["done"]
    print(describe(reports))
    print(
        f"lowest serving replicas: {watch.lowest} ({watch.samples} samples, "
        f"{watch.unanswered} unanswered while the head was down, {watch.unlisted} with the "
        "deployment not listed while Serve built the new application)"
    )
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    for name in nodes["balancers"]:
        assert reports[name].failed == 0, describe(reports)
    for name in nodes["ips"]:
        assert set(reports[name].outcomes) <= {"ok", "refused"}, describe(reports)
    assert watch.samples > 0
    for application in rayvars["ray_serve_applications"]:
        for deployment in application.get("deployments", []):
            key = f"{application['name']}/{deployment['name']}"
            assert watch.lowest[key] >= deployment["num_replicas"] - 1, watch.lowest
    port = rayvars["ray_serve_http_port"]
    for name, ip in nodes["ips"].items():
        status, body = http(f"http://{ip}:{port}/healthz")
        assert status == 200, (name, body)
        assert body["version"] == "99.0.0", (name, body)


def test_faults_that_heal_by_themselves_paged_nobody(nodes, alerts):
    """Every fault of this file but the host out for repair healed without a human, within
    the node alerts' for:. None of them reached the receiver: only the repaired worker was
    paged for a node (RayWorkerDown, once, and resolved)."""
    repaired = nodes["workers"][-1]
    pages = [
        (n.labels.get("alertname"), n.labels.get("node"))
        for n in alerts.seen
        if n.status == "firing" and n.labels.get("alertname") in NODE_ALERTS
    ]
    print("node alerts that reached the receiver:", pages)
    assert set(pages) == {("RayWorkerDown", repaired)}, alerts.seen
