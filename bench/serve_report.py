"""The serve benchmark's markdown report: the settings measured, a table per kind of load,
the targets with their status, and every measured run."""

from __future__ import annotations

import json

from .cells import fmt_ms, fmt_percent, fmt_rate, fmt_times
from .machine import machine_line
from .stats import Summary
from .wrk import WrkRun

# Targets of the issue, reported (never asserted).
TARGET_RATIO = 0.60  # Serve req/s >= 60 % of bare uvicorn's at 32 connections
TARGET_P99 = 3.0  # Serve p99 <= 3x bare uvicorn's at 32 connections


def render_serve(
    ctx: dict, meta: dict, summaries: list[Summary], runs: list[WrkRun], correctness: list[str]
) -> str:
    """The report of a serve benchmark, as markdown (ends with a newline).

    ``ctx`` is the context playbooks/benchmark.yml collected on the head (URLs, path,
    inventory, versions, Serve config and environment, head facts); ``meta`` the run's own
    (``started``, ``finished``, ``git``, ``controller``, ``load_before``/``load_after`` and the
    command's ``settings``: ``reps``, ``duration``, ``warmup``); ``correctness`` the problems
    the answer checks found ([] when every answer was right). Raises KeyError when a key the
    report prints is missing.
    """
    s = meta["settings"]
    lines = [
        f"# Serve vs bare uvicorn: {ctx.get('label') or 'current settings'}",
        "",
        f"- When: {meta['started']} to {meta['finished']} (UTC); git {meta['git']}",
        f"- Inventory: {ctx['inventory']} ({ctx['hosts']} hosts: 1 head + {ctx['workers']} "
        f"workers); Ray {ctx['ray_version']}, uvicorn {ctx['uvicorn_version']}",
        f"- Serve: `POST {ctx['serve_url']}{ctx['path']}` (application {ctx['application']}, "
        f"{ctx['replicas']} replicas)",
        f"- Bare: `{ctx['bare_command']}` on the head, `POST {ctx['bare_url']}{ctx['path']}`",
        f"- Serve environment (head): {', '.join(ctx['serve_env']) or 'Ray defaults'}",
        f"- Serve config: {serve_config_summary(ctx['serve_config'])}",
        f"- wrk on the controller: {s['reps']} runs of {s['duration']}s per target and load, "
        f"alternating (S,B then B,S), after a {s['warmup']}s warm-up each; numbers are medians, "
        "ratios the median of the back-to-back pairs' ratios",
        f"- Controller: {machine_line(meta['controller'])}; load average "
        f"{meta['load_before'][0]:.1f} before, {meta['load_after'][0]:.1f} after",
        f"- Head host: {head_line(ctx.get('head_facts', {}))}",
        "",
    ]
    small = [x for x in summaries if x.kind == "small"]
    batch = [x for x in summaries if x.kind == "batch"]
    if small:
        lines += [
            "| load | Serve req/s | bare req/s | Serve/bare | Serve p50 | bare p50 | Serve p99 | "
            "bare p99 | p99 Serve/bare | non-2xx S/B | errors S/B |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for x in small:
            sv, bv = x.serve, x.bare
            lines.append(
                f"| {x.scenario} | {fmt_rate(sv['rps'])} | {fmt_rate(bv['rps'])} | "
                f"**{fmt_percent(x.ratio)}** | {fmt_ms(sv['p50_ms'])} | "
                f"{fmt_ms(bv['p50_ms'])} | {fmt_ms(sv['p99_ms'])} | {fmt_ms(bv['p99_ms'])} | "
                f"{fmt_times(x.p99_ratio)} | {sv['non_2xx']}/{bv['non_2xx']} | "
                f"{sv['socket_errors']}/{bv['socket_errors']} |"
            )
        lines.append("")
    if batch:
        lines += [
            "| load | Serve items/s | bare items/s | Serve/bare | Serve p50 | bare p50 | "
            "Serve p99 | bare p99 | non-2xx S/B | errors S/B |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for x in batch:
            sv, bv = x.serve, x.bare
            lines.append(
                f"| {x.scenario} | {fmt_rate(sv['items_per_s'])} | "
                f"{fmt_rate(bv['items_per_s'])} | "
                f"**{fmt_percent(x.ratio)}** | {fmt_ms(sv['p50_ms'])} | "
                f"{fmt_ms(bv['p50_ms'])} | {fmt_ms(sv['p99_ms'])} | {fmt_ms(bv['p99_ms'])} | "
                f"{sv['non_2xx']}/{bv['non_2xx']} | {sv['socket_errors']}/{bv['socket_errors']} |"
            )
        lines.append("")
    lines += serve_targets(small, correctness)
    lines += [
        "",
        "<details><summary>Every measured run</summary>",
        "",
        "| load | run | target | req/s | p50 | p99 | requests | non-2xx | errors |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        lines.append(
            f"| {r.scenario} | {r.rep} | {r.target} | {fmt_rate(r.rps)} | {fmt_ms(r.p50_ms)} | "
            f"{fmt_ms(r.p99_ms)} | {r.requests} | {r.non_2xx} | {r.socket_errors}"
            + (f" ({r.error})" if r.error else "")
            + " |"
        )
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def serve_targets(small: list[Summary], correctness: list[str]) -> list[str]:
    """The "Targets (reported, not enforced)" lines: Serve's req/s ratio and p99 ratio at the
    one-item load with the most connections (against TARGET_RATIO and TARGET_P99), Serve's
    non-2xx and socket errors there (target 0), and the answer checks."""
    out = ["Targets (reported, not enforced):", ""]
    busiest = max(small, key=lambda x: x.connections, default=None)
    if busiest is not None:
        sv = busiest.serve
        ratio = busiest.ratio or 0.0
        p99 = busiest.p99_ratio
        pairs = sorted(busiest.ratios)
        spread = f", pairs {pairs[0]:.0%} to {pairs[-1]:.0%}" if len(pairs) > 1 else ""
        bad = sv["non_2xx"] + sv["socket_errors"]
        out += [
            f"- Serve req/s at {busiest.connections} connections >= 60 % of bare: "
            f"{ratio:.0%} ({'met' if ratio >= TARGET_RATIO else 'not met'}{spread})",
            f"- Serve p99 at {busiest.connections} connections <= 3x bare: "
            + (f"{p99:.2f}x ({'met' if p99 <= TARGET_P99 else 'not met'})" if p99 else "-"),
            f"- Zero non-2xx and socket errors on Serve: {bad} "
            f"({'met' if bad == 0 else 'not met'})",
        ]
    out.append(
        "- Every answer checked before the load (scores compared): "
        + ("all correct" if not correctness else "WRONG: " + "; ".join(correctness))
    )
    return out


def serve_config_summary(config: dict) -> str:
    """One line of a Serve config (Ray's schema): ``proxy_location``, the top-level
    ``logging_config``, and per application its deployments' overrides (``num_cpus`` taken
    out of ``ray_actor_options``, the other actor options left out; "code defaults" without
    any) and its ``logging_config``."""
    parts = [f"proxy_location {config.get('proxy_location', '?')}"]
    if config.get("logging_config"):
        parts.append(f"logging_config {json.dumps(config['logging_config'])}")
    for app in config.get("applications", []):
        deps = []
        for dep in app.get("deployments", []):
            keys = {k: v for k, v in dep.items() if k not in ("name", "ray_actor_options")}
            opts = dep.get("ray_actor_options", {})
            if "num_cpus" in opts:
                keys["num_cpus"] = opts["num_cpus"]
            deps.append(f"{dep.get('name')} {json.dumps(keys, separators=(',', ':'))}")
        extra = (
            f", logging_config {json.dumps(app['logging_config'])}"
            if app.get("logging_config")
            else ""
        )
        parts.append(f"{app.get('name')}: {'; '.join(deps) or 'code defaults'}{extra}")
    return "; ".join(parts)


def head_line(facts: dict) -> str:
    """One line of the head's Ansible facts as playbooks/benchmark.yml collects them
    (``vcpus``, ``memory_mb``, ``os``, ``kernel``, ``virtualization``); "?" for none."""
    if not facts:
        return "?"
    return (
        f"{facts.get('vcpus')} vCPUs, {facts.get('memory_mb')} MB, {facts.get('os')}, kernel "
        f"{facts.get('kernel')}, {facts.get('virtualization')}"
    )
