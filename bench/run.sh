#!/usr/bin/env bash
# rayforge benchmarks, one command each; reports go to bench/results/<UTC time>-<mode>.md.
#
#   bench/run.sh [-i INVENTORY] [serve] [--label TEXT] [--quick] [--docs] [ANSIBLE ARGS...]
#       Serve vs the same app under bare uvicorn (workers = replicas) on the inventory's
#       head, alternating: req/s, p50/p99 at 1 and 32 connections, non-2xx, the Serve/bare
#       ratios, and items/s with 1,000 and 10,000 items per request (playbooks/benchmark.yml).
#       ANSIBLE ARGS go to ansible-playbook, e.g. -e bench_reps=5 -e bench_duration=20.
#   bench/run.sh [-i INVENTORY] provision --yes [--workers 2,4] [--reruns 3] [--fresh-cache] [--docs] [ANSIBLE ARGS...]
#       DESTROYS the lab of INVENTORY (a lab inventory: playbooks/lab.yml makes its hosts),
#       then for each worker count creates it, times a cold site.yml and --reruns no-change
#       re-runs (median reported), and reports the bytes downloaded and shipped, the machine's
#       CPU use during the re-runs and the lab's own floor (bench/floor.yml: no-op module runs
#       on every host, after each re-run) for comparison. Leaves the lab at the last size.
#       ANSIBLE ARGS go to every site.yml run.
#   bench/run.sh machine
#       Describes this machine (CPU, RAM, kernel, Docker).
#
# INVENTORY defaults to inventories/lab. --docs copies the report into docs/benchmarks.md.
# --fresh-cache points the wheelhouse cache at an empty directory, so the first cold rollout
# downloads Ray as a new controller would. wrk is installed with apt when missing; Ansible
# comes from the project's tooling venv (scripts/bootstrap.sh) when not on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "bench: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

inventory=inventories/lab
mode=serve
label=""
quick=0
docs=0
confirm=0
workers=2,4
reruns=3
fresh_cache=0
passthrough=()
while [ $# -gt 0 ]; do
    case "$1" in
        -i|--inventory) [ $# -ge 2 ] || usage; inventory=$2; shift 2 ;;
        serve|provision|machine) mode=$1; shift ;;
        --label) [ $# -ge 2 ] || usage; label=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        --docs) docs=1; shift ;;
        --yes) confirm=1; shift ;;
        --workers) [ $# -ge 2 ] || usage; workers=$2; shift 2 ;;
        --reruns) [ $# -ge 2 ] || usage; reruns=$2; shift 2 ;;
        --fresh-cache) fresh_cache=1; shift ;;
        -h|--help) usage ;;
        *) passthrough+=("$1"); shift ;;
    esac
done

ensure_wrk() {
    command -v wrk >/dev/null && return
    say "installing wrk (apt)"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    command -v wrk >/dev/null || die "wrk could not be installed"
}

ensure_ansible() {
    command -v ansible-playbook >/dev/null && return
    local venv
    venv=$(scripts/bootstrap.sh)
    export PATH="$venv/bin:$PATH"
}

python=$(command -v python3 || true)
[ -n "$python" ] || die "python3 is needed"
# The driver is the bench package (bench/__init__.py maps its modules), run from the
# repository root (the cd above), like every path in this script.
driver=("$python" -m bench)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results

case "$mode" in
    machine)
        ensure_wrk
        exec "${driver[@]}" machine
        ;;
    serve)
        ensure_wrk
        ensure_ansible
        out="$PWD/bench/results/$stamp-serve.md"
        args=(-e "bench_results_file=$out")
        [ -n "$label" ] && args+=(-e "{\"bench_label\": $("$python" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$label")}")
        [ "$quick" = 1 ] && args+=(-e bench_duration=5 -e bench_warmup=1 -e bench_reps=2)
        say "Serve vs bare uvicorn on the head of $inventory (progress below; Ansible's log: ${out%.md}.ansible.log)"
        : >"${out%.md}.log"
        tail -n +1 -F "${out%.md}.log" 2>/dev/null &
        tail_pid=$!
        trap 'kill "$tail_pid" 2>/dev/null || true' EXIT
        rc=0
        ansible-playbook -i "$inventory" playbooks/benchmark.yml "${args[@]}" "${passthrough[@]}" \
            >"${out%.md}.ansible.log" 2>&1 || rc=$?
        sleep 1
        kill "$tail_pid" 2>/dev/null || true
        if [ ! -s "$out" ]; then
            tail -n 40 "${out%.md}.ansible.log" >&2
            die "the benchmark failed (rc=$rc); see ${out%.md}.ansible.log"
        fi
        echo
        cat "$out"
        [ "$docs" = 1 ] && "${driver[@]}" docs "$out" --section serve
        [ "$rc" = 0 ] || die "the benchmark reported a problem (rc=$rc); see ${out%.md}.ansible.log"
        ;;
    provision)
        [ "$confirm" = 1 ] || die "provision destroys and recreates the lab of $inventory: add --yes"
        ensure_ansible
        scripts/ensure-docker.sh >&2
        if [ -z "${RAYFORGE_HOST_IMAGE:-}" ]; then
            RAYFORGE_HOST_IMAGE=$(scripts/build-host-image.sh)
            export RAYFORGE_HOST_IMAGE
        fi
        out="$PWD/bench/results/$stamp-provision.md"
        cache_args=()
        if [ "$fresh_cache" = 1 ]; then
            cache_args=(--cache "$PWD/bench/results/$stamp-wheelhouse")
            say "fresh wheelhouse cache: $PWD/bench/results/$stamp-wheelhouse (remove it when done)"
        fi
        rc=0
        "${driver[@]}" provision -i "$inventory" --workers "$workers" --reruns "$reruns" --out "$out" \
            "${cache_args[@]}" -- "${passthrough[@]}" || rc=$?
        [ -s "$out" ] || die "the provisioning benchmark failed (rc=$rc)"
        [ "$docs" = 1 ] && "${driver[@]}" docs "$out" --section provision
        [ "$rc" = 0 ] || die "a rollout failed (rc=$rc); logs in ${out%.md}/"
        ;;
esac
