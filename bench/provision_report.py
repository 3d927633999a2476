"""The provisioning benchmark's markdown report: per lab size the cold rollout, the no-change
re-runs and the bytes moved; the targets; how the lab itself scales (its floor); and where a
re-run's time goes, per role and per task."""

from __future__ import annotations

from .cells import fmt_mb, fmt_spread
from .files import FLOOR_TASKS
from .machine import machine_line

# Targets of the issue, reported (never asserted).
TARGET_RERUN_S = 30.0  # no-change re-run of 3 hosts
TARGET_SCALE = 1.3  # 5-host re-run <= 1.3x the 3-host one


def render_provision(meta: dict, rows: list[dict]) -> str:
    """The report of a provisioning benchmark, as markdown (ends with a newline).

    ``meta`` is the run's own (``started``, ``finished``, ``git``, ``inventory``, ``cache``,
    ``ansible_args``, ``controller``, ``load_avg``); ``rows`` one dict per lab size as
    `bench.py provision` writes them to its .json (``workers``, ``hosts``, the ``cold``,
    ``recovery``, ``rerun`` and ``floor`` PlaybookRun dicts, byte counts). Raises KeyError
    when a key the report prints is missing.
    """
    lines = [
        "# Provisioning: cold rollout and no-change re-run",
        "",
        f"- When: {meta['started']} to {meta['finished']} (UTC); git {meta['git']}",
        f"- Inventory: {meta['inventory']} (lab recreated for each size: 1 head + N workers)"
        + (
            f"; site.yml run with `{' '.join(meta['ansible_args'])}`"
            if meta.get("ansible_args")
            else ""
        ),
        f"- Controller: {machine_line(meta['controller'])}; load average "
        f"{meta['load_avg'][0]:.1f} at the end",
        f"- Wheelhouse cache: {meta['cache']} (downloaded = new `deps-*` in it during the cold "
        "rollout; shipped = the archive times the hosts that unpacked it)",
        "",
        "| hosts | cold rollout | no-change re-run (median) | re-run changed | downloaded | "
        "app wheels built | archive | shipped (cold) | shipped (re-run) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        cold, rerun, recovery = r["cold"], r["rerun"], r.get("recovery")
        cold_cell = f"{cold['wall_s']:.0f} s"
        if cold["rc"]:
            cold_cell += (
                " (failed"
                + (
                    f"; a second run finished it in {recovery['wall_s']:.0f} s"
                    + ("" if recovery["rc"] == 0 else ", FAILED too")
                    if recovery
                    else ""
                )
                + ")"
            )
        unpacked = cold["unpacked_hosts"] + (recovery["unpacked_hosts"] if recovery else 0)
        lines.append(
            f"| 1 + {r['workers']} | {cold_cell}"
            + f" | {rerun['wall_s']:.1f} s"
            + fmt_spread(r.get("reruns", []))
            + (
                f" ({r['rerun_attempts'] - len(r['reruns'])} retried)"
                if r.get("reruns") and r["rerun_attempts"] > len(r["reruns"])
                else ""
            )
            + ("" if rerun["rc"] == 0 else " (FAILED)")
            + f" | {rerun['changed']} | {fmt_mb(r['downloaded_bytes'])}"
            f" | {fmt_mb(r['built_bytes'])}"
            f" | {fmt_mb(r['archive_bytes'])} | {fmt_mb(r['shipped_cold_bytes'])}"
            f" ({unpacked} hosts) | {fmt_mb(r['shipped_rerun_bytes'])} |"
        )
    # Only re-runs that succeeded and changed nothing count towards the targets.
    by_hosts = {r["hosts"]: r for r in rows if r["rerun"]["rc"] == 0 and r["rerun"]["changed"] == 0}
    lines += ["", "Targets (reported, not enforced):", ""]
    if 3 in by_hosts:
        t3 = by_hosts[3]["rerun"]["wall_s"]
        lines.append(
            f"- No-change re-run on 3 hosts <= 30 s: {t3:.1f} s "
            f"({'met' if t3 <= TARGET_RERUN_S else 'not met'})"
        )
        if 5 in by_hosts:
            t5 = by_hosts[5]["rerun"]["wall_s"]
            lines.append(
                f"- 5-host re-run <= 1.3x the 3-host one: {t5 / t3:.2f}x "
                f"({'met' if t5 / t3 <= TARGET_SCALE else 'not met'})"
            )
    lines.append(
        "- Re-runs change nothing: "
        + ", ".join(f"{r['hosts']} hosts changed={r['rerun']['changed']}" for r in rows)
    )
    lines += render_floor(rows)
    for r in rows:
        tasks = r["rerun"]["tasks"]
        if not tasks:
            continue
        total = sum(t for _, t in tasks)
        roles: dict[str, float] = {}
        for name, t in tasks:
            roles[role_of(name)] = roles.get(role_of(name), 0.0) + t
        lines += [
            "",
            f"No-change re-run on {r['hosts']} hosts: where the {r['rerun']['wall_s']:.1f} s go "
            f"(profile_tasks; tasks sum to {total:.1f} s)",
            "",
            "| role | seconds | share |",
            "| --- | ---: | ---: |",
        ]
        for role, t in sorted(roles.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {role} | {t:.1f} | {t / total:.0%} |")
        lines += ["", "| slowest tasks | seconds |", "| --- | ---: |"]
        for name, t in tasks[:12]:
            lines.append(f"| {name} | {t:.2f} |")
    lines.append("")
    return "\n".join(lines)


def render_floor(rows: list[dict]) -> list[str]:
    """How the lab itself scales, as report lines: per size with a ``floor``, the re-run's
    median, the machine's CPU use during it, the CPUs the cluster keeps busy at rest and the
    floor's median (bench/floor.yml); with 3 and 5 hosts, both 5/3 ratios. [] when no row
    has a floor."""
    rows = [r for r in rows if r.get("floor")]
    if not rows:
        return []
    lines = [
        "",
        "How the lab itself scales (the re-run starts once the machine's load holds steady; the"
        " floor right after it, on the same hosts): the machine's CPU use during the re-run,"
        " the CPUs the cluster keeps busy at rest, and the"
        f" floor, {FLOOR_TASKS} tasks that each make one no-op module run on every host"
        " (bench/floor.yml):",
        "",
        "| hosts | re-run (median) | CPU busy during it | cluster at rest | floor (median) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        rerun, floor = r["rerun"], r["floor"]
        busy, capacity = rerun.get("cpu_busy_s", 0.0), rerun.get("cpu_capacity_s", 0.0)
        share = f" ({busy / capacity:.0%})" if capacity else ""
        lines.append(
            f"| 1 + {r['workers']} | {rerun['wall_s']:.1f} s"
            f" | {busy:.0f} of {capacity:.0f} CPU-s{share}"
            f" | {r['rest_cpus']:.2f} CPUs | {floor['wall_s']:.1f} s"
            f"{fmt_spread(r.get('floors', []))}" + ("" if floor["rc"] == 0 else " (FAILED)") + " |"
        )
    by_hosts = {r["hosts"]: r for r in rows}
    if 3 in by_hosts and 5 in by_hosts:
        f3, f5 = by_hosts[3]["floor"]["wall_s"], by_hosts[5]["floor"]["wall_s"]
        r3, r5 = by_hosts[3]["rerun"]["wall_s"], by_hosts[5]["rerun"]["wall_s"]
        lines += [
            "",
            f"- 5 hosts / 3 hosts: re-run {r5 / r3:.2f}x, floor {f5 / f3:.2f}x"
            " (the floor has no fixed part to spread: it is the lab's per-host cost alone)",
        ]
    return lines


def role_of(task: str) -> str:
    """The role of a profile_tasks task name ``"role : task"``; "(play)" for a task of the
    play itself (no ``" : "``)."""
    return task.split(" : ", 1)[0] if " : " in task else "(play)"
