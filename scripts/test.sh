#!/usr/bin/env bash
# THE test entry point (`make test`, and CI through .ci/run). From a clean clone it:
#   1. docker      scripts/ensure-docker.sh (start, or install and start, a Docker engine);
#      chromium    scripts/ensure-chromium.sh (Debian's Chromium, for the console pages' test)
#   2. bootstrap   scripts/bootstrap.sh (the tooling venv; its bin/ goes first on PATH)
#   3. host-image  scripts/build-host-image.sh, once per Debian release the scenarios run on
#                  (exports RAYFORGE_HOST_IMAGE = the bookworm tag, RAYFORGE_HOST_IMAGE_TRIXIE =
#                  the trixie one, for molecule/single_host)
#   4. lint        yamllint, ansible-lint, ruff check, ruff format --check,
#                  scripts/check-argument-specs.py, scripts/gen-role-docs.py --check (the
#                  roles' READMEs)
#                  (one step each). With scenarios in lanes (6), they run first in the
#                  lightest lane, beside the cluster scenario; else before step 5.
#   5. app-tests   pytest app/tests; unit-tests: pytest tests/unit (modules, dashboard client,
#                  reconciler, against recorded dashboard answers); preflight-tests: pytest
#                  tests/preflight (bad inventories); controller-tests: pytest tests/controller
#                  (the wheelhouse cache, the README). With scenarios in lanes (6), these run
#                  last in the lightest lane, beside the cluster scenario; else before them.
#   6. molecule    destroy leftovers of an aborted run, then `molecule test -s NAME` for every
#                  molecule/*/molecule.yml, in RAYFORGE_SCENARIO_JOBS lanes side by side (the
#                  cluster scenario in one, the lint steps, the shorter ones and then the
#                  suites of step 5 after each other in the other; each log printed whole
#                  when all have ended); a failure does not stop the others. A scenario without a
#                  tests/test_*.py fails without running.
# Each step has a time limit (killed with its children when it runs over) and its own log.
# The summary table gives each step's result, seconds and tests; the closing line counts
# tests: pytest's own counts where a step ran pytest (the app, the preflight cases, each
# scenario's testinfra verify), 1 for any other step, and every skipped step as skipped:
#   N passed, N failed, N skipped
# Exit status: 0 when nothing failed.
#
# Environment (a developer's switches; with CI set, every RAYFORGE_SKIP_*, RAYFORGE_ONLY_LINT
# and RAYFORGE_SCENARIOS is refused, so that CI cannot run less than everything):
#   RAYFORGE_SCENARIOS="a b"   only these Molecule scenarios (default: all)
#   RAYFORGE_SKIP_LINT=1       skip the lint steps
#   RAYFORGE_SKIP_APP_TESTS=1  skip the app, preflight and controller tests
#   RAYFORGE_SKIP_MOLECULE=1   skip Molecule (and so the Docker engine and the host image)
#   RAYFORGE_ONLY_LINT=1       bootstrap and lint only (`make lint`)
#   RAYFORGE_STEP_TIMEOUT      seconds a step may take (default 900)
#   RAYFORGE_SCENARIO_TIMEOUT  seconds one Molecule scenario may take (default 3600: the
#                              cluster scenario, the longest, runs beside the others on a
#                              machine its idle Ray nodes keep busy: 2,319 s alone, over
#                              2,700 s on a shared machine, 2026-12-07; docs/benchmarks.md,
#                              "The test run", has its time)
#   RAYFORGE_SCENARIO_JOBS     Molecule scenarios run side by side (default 2; 1 runs them one
#                              after the other with their output live). Side by side, the
#                              short scenarios end while the cluster scenario still runs, so
#                              the run takes about as long as that one.
#   RAYFORGE_LANE_NICE         niceness of the lanes beside the cluster scenario's (default 5):
#                              they end well before it, so they take the CPU it leaves
#   RAYFORGE_TEST_LOGS         directory for the steps' logs (default: a new temporary one)
#   RAYFORGE_CACHE             cache root for the venv and wheels (default ~/.cache/rayforge;
#                              created when missing; CI gives each run an empty one)
set -uo pipefail # no -e: a failed step is recorded and the run goes on

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

step_timeout=${RAYFORGE_STEP_TIMEOUT:-900}
scenario_timeout=${RAYFORGE_SCENARIO_TIMEOUT:-3600}
scenario_jobs=${RAYFORGE_SCENARIO_JOBS:-2}
# Niceness of the lanes beside the heaviest (run_lanes).
lane_nice=${RAYFORGE_LANE_NICE:-5}
lane_pids=()

if [ -n "${CI:-}" ] && [ "${CI}" != false ] && [ "${CI}" != 0 ]; then
    refused=()
    for var in RAYFORGE_SKIP_LINT RAYFORGE_SKIP_APP_TESTS RAYFORGE_SKIP_MOLECULE \
        RAYFORGE_ONLY_LINT RAYFORGE_SCENARIOS; do
        [ -n "${!var:-}" ] && refused+=("$var=${!var}")
    done
    if [ "${#refused[@]}" -gt 0 ]; then
        echo "test.sh: CI runs everything; unset ${refused[*]}" >&2
        echo
        echo "0 passed, 1 failed"
        exit 2
    fi
fi

if [ "${RAYFORGE_ONLY_LINT:-0}" = 1 ]; then
    RAYFORGE_SKIP_MOLECULE=1
    RAYFORGE_SKIP_APP_TESTS=1
    RAYFORGE_SKIP_LINT=0
fi
skip_lint=${RAYFORGE_SKIP_LINT:-0}
skip_app=${RAYFORGE_SKIP_APP_TESTS:-0}
skip_molecule=${RAYFORGE_SKIP_MOLECULE:-0}

# No TTY (CI, a pipe): no colour codes in the logs, from any of the tools.
if [ ! -t 1 ]; then
    export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 NO_COLOR=1
fi
export PYTHONUNBUFFERED=1

logs=${RAYFORGE_TEST_LOGS:-}
if [ -z "$logs" ]; then
    logs=$(mktemp -d "${TMPDIR:-/tmp}/rayforge-test-logs.XXXXXX") || exit 1
fi
mkdir -p "$logs" || exit 1

# ---------------------------------------------------------------------------------------------
# Step bookkeeping.
names=()
results=()
durations=()
counts=() # "passed failed skipped" tests of each step

now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
banner() { printf '\n=============== %s ===============\n' "$*"; }

record() { # record NAME RESULT SECONDS "PASSED FAILED SKIPPED"
    names+=("$1")
    results+=("$2")
    durations+=("$3")
    counts+=("$4")
}

skip() { # skip NAME REASON
    banner "$1: skipped ($2)"
    record "$1" "SKIP ($2)" "-" "0 0 1"
}

fail_unrun() { # fail_unrun NAME REASON: a step that could not even start
    banner "$1: FAIL ($2)"
    record "$1" "FAIL ($2)" "-" "0 1 0"
}

# Tests a step's log reports: the sum of pytest's summary lines ("== 3 passed, 1 skipped in
# 2.0s ==", or without the rules under -q), or "" when it has none. Errors count as failures.
pytest_counts() {
    awk '
        /^(=+ )?[0-9]+ [a-z]+(, [0-9]+ [a-z]+)* in [0-9.]+s( \([0-9:]+\))?( =+)?$/ {
            found = 1
            n = split($0, words, /[ ,=]+/)
            for (i = 2; i <= n; i++) {
                if (words[i] == "passed") p += words[i - 1]
                else if (words[i] ~ /^(failed|error|errors)$/) f += words[i - 1]
                else if (words[i] == "skipped") s += words[i - 1]
            }
        }
        END { if (found) printf "%d %d %d", p, f, s }
    ' "$1"
}

# limited COMMAND...: the command under the current step's time limit; GNU timeout signals
# the command's whole process group (Molecule's Ansible runs, pytest's Ray) when it runs over.
step_limit=$step_timeout
limited() { timeout --kill-after=30 "$step_limit" "$@"; }

# step [--limit SECONDS] NAME COMMAND...: runs the command (stdin closed: nothing may prompt;
# output also in $logs/NAME.log), records the result and its tests. A shell function runs in
# this shell (it may set variables) and applies the limit itself through `limited`.
step() {
    local limit=$step_timeout name start rc result log tests
    if [ "$1" = --limit ]; then
        limit=$2
        shift 2
    fi
    name=$1
    shift
    log="$logs/${name//[^A-Za-z0-9_.-]/_}.log"
    banner "$name"
    echo "+ $*"
    start=$(now)
    step_limit=$limit
    if [ "$(type -t "$1")" = function ]; then
        "$@" </dev/null > >(tee "$log") 2>&1
    else
        limited "$@" </dev/null > >(tee "$log") 2>&1
    fi
    rc=$?
    step_limit=$step_timeout
    wait "$!" 2>/dev/null # tee has written the whole log
    conclude "$name" "$rc" "$(elapsed "$start" "$(now)")" "$log" "$limit"
    return "$rc"
}

# conclude NAME RC SECONDS LOG LIMIT: records a step that ended with exit status RC, with the
# tests its LOG reports.
conclude() {
    local name=$1 rc=$2 secs=$3 log=$4 limit=$5 result tests
    case "$rc" in
        0) result=PASS ;;
        124 | 137) result="FAIL (timed out after ${limit}s)" ;;
        *) result="FAIL (exit $rc)" ;;
    esac
    tests=$(pytest_counts "$log")
    if [ -z "$tests" ]; then
        if [ "$rc" -eq 0 ]; then tests="1 0 0"; else tests="0 1 0"; fi
    elif [ "$rc" -ne 0 ] && [ "$(echo "$tests" | cut -d' ' -f2)" = 0 ]; then
        # pytest passed but the step failed (a converge, idempotence, a timeout): one failure.
        tests=$(echo "$tests" | awk '{ printf "%d %d %d", $1, $2 + 1, $3 }')
    fi
    record "$name" "$result" "$secs" "$tests"
    echo "--- $name: $result in ${secs}s (tests passed/failed/skipped: ${tests// //})"
}

summary() {
    local i passed=0 failed=0 skipped=0 p f s
    banner "summary"
    printf '%-34s %-34s %9s %s\n' STEP RESULT SECONDS "TESTS (passed failed skipped)"
    for i in "${!names[@]}"; do
        read -r p f s <<<"${counts[$i]}"
        printf '%-34s %-34s %9s %s\n' "${names[$i]}" "${results[$i]}" "${durations[$i]}" \
            "$p $f $s"
        passed=$((passed + p))
        failed=$((failed + f))
        skipped=$((skipped + s))
    done
    printf '%-34s %-34s %9s\n' total "" "$(elapsed "$run_start" "$(now)")"
    echo "step logs: $logs"
    echo
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
}

on_signal() {
    # Scenario lanes still running end with this run (their timeouts' groups with them).
    local pid
    for pid in "${lane_pids[@]}"; do
        pkill -TERM -P "$pid" 2>/dev/null
        kill "$pid" 2>/dev/null
    done
    record "(interrupted)" "FAIL (signal)" "-" "0 1 0"
    summary
    exit 130
}
trap on_signal INT TERM

run_start=$(now)

# ---------------------------------------------------------------------------------------------
# 1. Docker engine: only Molecule (and the host image it runs) needs one.
docker_ok=0
if [ "$skip_molecule" = 1 ]; then
    skip docker "Molecule skipped"
elif step --limit 300 docker scripts/ensure-docker.sh; then
    docker_ok=1
fi
# The cluster scenario loads Prometheus' console pages in a real browser: Debian's Chromium.
if [ "$skip_molecule" = 1 ]; then
    skip chromium "Molecule skipped"
else
    step --limit 600 chromium scripts/ensure-chromium.sh
fi

# 2. The tooling venv. Nothing after this can run without it.
venv=
do_bootstrap() { venv=$(limited scripts/bootstrap.sh) && [ -x "$venv/bin/python" ]; }
if ! step --limit 1200 bootstrap do_bootstrap; then
    echo "bootstrap failed: no tooling venv, nothing else can run" >&2
    summary
    exit 1
fi
export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv"
echo "tooling venv: $venv"

# 3. The systemd host images for the Molecule platforms: one variable per Debian suite,
# RAYFORGE_HOST_IMAGE for bookworm (the cluster scenario, and the lab),
# RAYFORGE_HOST_IMAGE_<SUITE> for the others.
image_ok=0
do_image() {
    local suite var tag
    for suite in bookworm trixie; do
        var=RAYFORGE_HOST_IMAGE
        [ "$suite" = bookworm ] || var="RAYFORGE_HOST_IMAGE_${suite^^}"
        tag=$(limited env RAYFORGE_IMAGE_SUITE="$suite" scripts/build-host-image.sh) &&
            [ -n "$tag" ] || return 1
        export "$var=$tag"
        echo "$var=$tag"
    done
}
if [ "$skip_molecule" = 1 ]; then
    skip host-image "Molecule skipped"
elif [ "$docker_ok" = 0 ]; then
    skip host-image "no Docker engine"
elif step --limit 1200 host-image do_image; then
    image_ok=1
fi

# 4. Lint. With Molecule's scenarios in lanes (6), the lint steps run first in the lightest
# lane, beside the longest scenario (off the run's critical path); otherwise here, before step 5.
lints=() # the lint steps still to run
if [ "$skip_lint" = 1 ]; then
    skip lint "RAYFORGE_SKIP_LINT=1"
else
    ruff_paths=()
    for path in app bench scripts molecule tests roles/*/library roles/*/module_utils roles/*/files; do
        [ -e "$path" ] && ruff_paths+=("$path")
    done
    lints=(lint:yamllint lint:ansible-lint lint:ruff-check lint:ruff-format lint:argument-specs)
    # Each role's README (roles/<role>/README.md) is generated from its argument specs: every
    # one must exist and be current.
    [ -f scripts/gen-role-docs.py ] && lints+=(lint:role-docs)
fi
lint_cmd() { # lint_cmd NAME: one lint step's command, under the step's time limit
    case "$1" in
        lint:yamllint) limited yamllint -s . ;;
        lint:ansible-lint) limited ansible-lint ;;
        lint:ruff-check) limited ruff check "${ruff_paths[@]}" ;;
        lint:ruff-format) limited ruff format --check --diff "${ruff_paths[@]}" ;;
        lint:argument-specs) limited python scripts/check-argument-specs.py ;;
        lint:role-docs) limited python scripts/gen-role-docs.py --check ;;
        *) echo "no lint step $1" >&2 && return 2 ;;
    esac
}
run_lints() {
    local name
    for name in "${lints[@]}"; do
        step "$name" lint_cmd "$name"
    done
    lints=()
}

# 5. The app's tests, the bad inventories (the real site.yml against local hosts, stopping in
# preflight) and the controller's own work. With Molecule's scenarios in lanes, they run in the
# lightest lane after its scenarios (beside the longest scenario, off the run's critical path);
# otherwise here, one after the other.
suites=() # NAME:DIR of each suite to run
for suite in app-tests:app/tests unit-tests:tests/unit preflight-tests:tests/preflight \
    controller-tests:tests/controller; do
    name=${suite%%:*}
    dir=${suite#*:}
    if [ "$skip_app" = 1 ]; then
        skip "$name" "RAYFORGE_SKIP_APP_TESTS=1"
    elif [ ! -d "$dir" ]; then
        fail_unrun "$name" "no $dir"
    else
        suites+=("$suite")
    fi
done
run_suites() {
    local suite
    for suite in "${suites[@]}"; do
        step "${suite%%:*}" python -m pytest "${suite#*:}"
    done
    suites=()
}

# 6. Molecule scenarios.
scenario_ready() { # why NAME cannot run, or nothing
    if [ ! -f "molecule/$1/molecule.yml" ]; then
        echo "no molecule/$1/molecule.yml"
    elif ! compgen -G "molecule/$1/tests/test_*.py" >/dev/null; then
        echo "no molecule/$1/tests/test_*.py: a scenario verifies something"
    fi
}
molecule_failed() {
    echo "--- scenario $1 failed; Docker containers now:"
    docker ps -a --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Labels}}' || true
}
# Scenarios in lanes: up to $scenario_jobs lanes run side by side, each its jobs one after the
# other. Scenarios are placed longest first, each in the lane with the fewest platforms so far
# (platforms stand for length: the cluster scenario has most and takes longest), so the short
# ones share a lane beside it; the lint steps go first and the suites of step 5 last in the
# lightest lane. Each job's output goes to its log while it runs; the logs are printed whole
# once every lane has ended (the lint steps, the suites, then the scenarios in name order),
# and recorded as steps.
platform_count() { grep -c '^  - name:' "molecule/$1/molecule.yml"; }
lane_job() { # lane_job molecule:NAME | lint:NAME | suite:NAME:DIR, in a lane: its log and .rc
    local kind=${1%%:*} rest=${1#*:} name log start rc secs
    name=${rest%%:*}
    case "$kind" in
        molecule) log="$logs/molecule_$name.log" ;;
        lint) log="$logs/lint_$name.log" ;;
        *) log="$logs/$name.log" ;;
    esac
    start=$(now)
    {
        if [ "$kind" = molecule ]; then
            echo "+ molecule test -s $name"
            timeout --kill-after=30 "$scenario_timeout" molecule test -s "$name" </dev/null
            rc=$?
            [ "$rc" -eq 0 ] || molecule_failed "$name"
        elif [ "$kind" = lint ]; then
            echo "+ $1"
            lint_cmd "$1" </dev/null
            rc=$?
        else
            echo "+ python -m pytest ${rest#*:}"
            timeout --kill-after=30 "$step_timeout" python -m pytest "${rest#*:}" </dev/null
            rc=$?
        fi
    } >"$log" 2>&1
    secs=$(elapsed "$start" "$(now)")
    echo "$rc $secs" >"$log.rc"
    echo "--- ${kind}:$name ended (exit $rc) after ${secs}s"
}
lane_report() { # lane_report STEP LOG LIMIT: prints a lane job's log, records its step
    local rc secs
    banner "$1"
    cat "$2" 2>/dev/null
    read -r rc secs <"$2.rc" 2>/dev/null || { rc=1 secs=-; }
    conclude "$1" "$rc" "$secs" "$2" "$3"
}
run_lanes() {
    local name lane best heavy i weight suite lanes=() weights=()
    for ((i = 0; i < scenario_jobs; i++)); do
        lanes+=("")
        weights+=(0)
    done
    # Longest first (most platforms), each to the lightest lane so far.
    for name in $(for name in "$@"; do echo "$(platform_count "$name") $name"; done |
        sort -k1,1nr -k2 | cut -d' ' -f2); do
        best=0
        for ((i = 1; i < scenario_jobs; i++)); do
            [ "${weights[$i]}" -lt "${weights[$best]}" ] && best=$i
        done
        weight=$(platform_count "$name")
        weights[best]=$((weights[best] + weight))
        lanes[best]="${lanes[$best]} molecule:$name"
    done
    best=0
    for ((i = 1; i < scenario_jobs; i++)); do
        [ "${weights[$i]}" -lt "${weights[$best]}" ] && best=$i
    done
    for suite in "${suites[@]}"; do
        lanes[best]="${lanes[$best]} suite:$suite"
    done
    lanes[best]="${lints[*]}${lanes[$best]}"
    # The heaviest lane (the longest scenario: the run's critical path) keeps the CPU's
    # priority; the others run niced by $lane_nice, so on a machine the lanes keep busy they
    # take the CPU it leaves (they end well before it), not the CPU its fault tests time.
    heavy=0
    for ((i = 1; i < scenario_jobs; i++)); do
        [ "${weights[$i]}" -gt "${weights[$heavy]}" ] && heavy=$i
    done
    banner "molecule: ${scenario_jobs} lanes side by side"
    for i in "${!lanes[@]}"; do
        lane=${lanes[$i]}
        [ -n "$lane" ] || continue
        echo "lane:$lane$([ "$i" = "$heavy" ] || echo " (nice $lane_nice)")"
        (
            [ "$i" = "$heavy" ] || renice -n "$lane_nice" -p "$BASHPID" >/dev/null
            for job in $lane; do
                lane_job "$job"
            done
        ) &
        lane_pids+=("$!")
    done
    wait "${lane_pids[@]}"
    lane_pids=()
    for name in "${lints[@]}"; do
        lane_report "$name" "$logs/${name//[^A-Za-z0-9_.-]/_}.log" "$step_timeout"
    done
    lints=()
    for suite in "${suites[@]}"; do
        name=${suite%%:*}
        lane_report "$name" "$logs/$name.log" "$step_timeout"
    done
    suites=()
    for name in "$@"; do
        lane_report "molecule:$name" "$logs/molecule_$name.log" "$scenario_timeout"
    done
}
if [ "$skip_molecule" = 1 ]; then
    skip molecule "RAYFORGE_SKIP_MOLECULE=1"
else
    scenarios=()
    if [ -n "${RAYFORGE_SCENARIOS:-}" ]; then
        read -r -a scenarios <<<"$RAYFORGE_SCENARIOS"
    else
        for file in molecule/*/molecule.yml; do
            [ -f "$file" ] && scenarios+=("$(basename "$(dirname "$file")")")
        done
        mapfile -t scenarios < <(printf '%s\n' "${scenarios[@]}" | sort)
    fi
    if [ "${#scenarios[@]}" -eq 0 ]; then
        fail_unrun molecule "no scenario found"
    elif [ "$image_ok" = 0 ]; then
        for name in "${scenarios[@]}"; do
            fail_unrun "molecule:$name" "not run: no host image"
        done
    else
        # Leftovers of an aborted run (containers, Molecule's state) would break `create`.
        cleanup() {
            local name rc=0
            for name in "$@"; do
                echo "+ molecule destroy -s $name"
                limited molecule destroy -s "$name" || rc=1
            done
            return "$rc"
        }
        known=()
        for name in "${scenarios[@]}"; do
            why=$(scenario_ready "$name")
            if [ -n "$why" ]; then
                fail_unrun "molecule:$name" "$why"
            else
                known+=("$name")
            fi
        done
        if [ "${#known[@]}" -gt 0 ]; then
            step molecule:cleanup cleanup "${known[@]}"
            if [ "$scenario_jobs" -le 1 ] || [ "${#known[@]}" -le 1 ]; then
                run_lints
                run_suites
                for name in "${known[@]}"; do
                    step --limit "$scenario_timeout" "molecule:$name" molecule test -s "$name" ||
                        molecule_failed "$name"
                done
            else
                run_lanes "${known[@]}"
            fi
        fi
    fi
fi
run_lints # when no lane took them
run_suites

summary
