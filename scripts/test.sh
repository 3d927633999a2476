#!/usr/bin/env bash
# THE test entry point (`make test`, and CI through .ci/run). From a clean clone it:
#   1. docker      scripts/ensure-docker.sh (start, or install and start, a Docker engine)
#   2. bootstrap   scripts/bootstrap.sh (the tooling venv; its bin/ goes first on PATH)
#   3. host-image  scripts/build-host-image.sh (exports RAYFORGE_HOST_IMAGE = its tag)
#   4. lint        yamllint, ansible-lint, ruff check, ruff format --check,
#                  scripts/check-argument-specs.py, scripts/gen-role-docs.py --check README.md
#                  (one step each)
#   5. app-tests   pytest app/tests; preflight-tests: pytest tests/preflight (bad inventories);
#                  controller-tests: pytest tests/controller (the wheelhouse cache)
#   6. molecule    destroy leftovers of an aborted run, then `molecule test -s NAME` for every
#                  molecule/*/molecule.yml, sorted; a failure does not stop the others
# Each step is timed; a summary table and the line "N passed, N failed" (steps) end the run.
# Exit status: 0 when no step failed.
#
# Environment:
#   RAYFORGE_SCENARIOS="a b"   only these Molecule scenarios (default: all)
#   RAYFORGE_SKIP_LINT=1       skip the lint steps
#   RAYFORGE_SKIP_APP_TESTS=1  skip pytest app/tests
#   RAYFORGE_SKIP_MOLECULE=1   skip Molecule (and so the Docker engine and the host image)
#   RAYFORGE_ONLY_LINT=1       bootstrap and lint only (`make lint`)
#   RAYFORGE_CACHE             cache root for the venv and wheels (default ~/.cache/rayforge;
#                              created when missing; CI gives each run an empty one)
set -uo pipefail # no -e: a failed step is recorded and the run goes on

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

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

# ---------------------------------------------------------------------------------------------
# Step bookkeeping.
names=()
results=()
durations=()

now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
banner() { printf '\n=============== %s ===============\n' "$*"; }

record() { # record NAME RESULT SECONDS
    names+=("$1")
    results+=("$2")
    durations+=("$3")
}

skip() { # skip NAME REASON
    banner "$1: skipped ($2)"
    record "$1" "SKIP ($2)" "-"
}

# step NAME COMMAND...: runs the command (stdin closed: nothing may prompt), records the result.
step() {
    local name=$1 start rc result
    shift
    banner "$name"
    echo "+ $*"
    start=$(now)
    "$@" </dev/null
    rc=$?
    if [ "$rc" -eq 0 ]; then result=PASS; else result="FAIL (exit $rc)"; fi
    record "$name" "$result" "$(elapsed "$start" "$(now)")"
    echo "--- $name: $result in ${durations[-1]}s"
    return "$rc"
}

summary() {
    local i passed=0 failed=0
    banner "summary"
    printf '%-34s %-34s %9s\n' STEP RESULT SECONDS
    for i in "${!names[@]}"; do
        printf '%-34s %-34s %9s\n' "${names[$i]}" "${results[$i]}" "${durations[$i]}"
        case "${results[$i]}" in
            PASS) passed=$((passed + 1)) ;;
            FAIL*) failed=$((failed + 1)) ;;
        esac
    done
    printf '%-34s %-34s %9s\n' total "" "$(elapsed "$run_start" "$(now)")"
    echo
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

on_signal() {
    record "(interrupted)" "FAIL (signal)" "-"
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
elif step docker scripts/ensure-docker.sh; then
    docker_ok=1
fi

# 2. The tooling venv. Nothing after this can run without it.
venv=
do_bootstrap() { venv=$(scripts/bootstrap.sh) && [ -x "$venv/bin/python" ]; }
if ! step bootstrap do_bootstrap; then
    echo "bootstrap failed: no tooling venv, nothing else can run" >&2
    summary
    exit 1
fi
export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv"
echo "tooling venv: $venv"

# 3. The systemd host image for the Molecule platforms.
image_ok=0
do_image() {
    RAYFORGE_HOST_IMAGE=$(scripts/build-host-image.sh) && [ -n "$RAYFORGE_HOST_IMAGE" ] &&
        export RAYFORGE_HOST_IMAGE && echo "RAYFORGE_HOST_IMAGE=$RAYFORGE_HOST_IMAGE"
}
if [ "$skip_molecule" = 1 ]; then
    skip host-image "Molecule skipped"
elif [ "$docker_ok" = 0 ]; then
    skip host-image "no Docker engine"
elif step host-image do_image; then
    image_ok=1
fi

# 4. Lint.
if [ "$skip_lint" = 1 ]; then
    skip lint "RAYFORGE_SKIP_LINT=1"
else
    ruff_paths=()
    for path in app bench scripts molecule tests roles/*/library roles/*/files; do
        [ -e "$path" ] && ruff_paths+=("$path")
    done
    step lint:yamllint yamllint -s .
    step lint:ansible-lint ansible-lint
    step lint:ruff-check ruff check "${ruff_paths[@]}"
    step lint:ruff-format ruff format --check --diff "${ruff_paths[@]}"
    step lint:argument-specs python scripts/check-argument-specs.py
    # README's role variable tables are generated from the argument specs: must be current.
    if [ -f scripts/gen-role-docs.py ] && [ -f README.md ]; then
        step lint:role-docs python scripts/gen-role-docs.py --check README.md
    fi
fi

# 5. The app's tests.
if [ "$skip_app" = 1 ]; then
    skip app-tests "skipped by environment"
elif [ ! -d app/tests ]; then
    skip app-tests "no app/tests"
else
    step app-tests python -m pytest app/tests
fi

# 5b. Bad inventories: the real site.yml against local hosts, stopping in preflight.
if [ "$skip_app" = 1 ]; then
    skip preflight-tests "skipped by environment"
elif [ -d tests/preflight ]; then
    step preflight-tests python -m pytest tests/preflight
fi

# 5c. The controller's own work (the wheelhouse cache shared by concurrent runs).
if [ "$skip_app" = 1 ]; then
    skip controller-tests "skipped by environment"
elif [ -d tests/controller ]; then
    step controller-tests python -m pytest tests/controller
fi

# 6. Molecule scenarios.
scenario_exists() { [ -f "molecule/$1/molecule.yml" ]; }
molecule_failed() {
    echo "--- scenario $1 failed; Docker containers now:"
    docker ps -a --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Labels}}' || true
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
        record molecule "FAIL (no scenario found)" "-"
    elif [ "$image_ok" = 0 ]; then
        for name in "${scenarios[@]}"; do
            record "molecule:$name" "FAIL (not run: no host image)" "-"
        done
    else
        # Leftovers of an aborted run (containers, Molecule's state) would break `create`.
        cleanup() {
            local name rc=0
            for name in "$@"; do
                echo "+ molecule destroy -s $name"
                molecule destroy -s "$name" || rc=1
            done
            return "$rc"
        }
        known=()
        for name in "${scenarios[@]}"; do
            if scenario_exists "$name"; then
                known+=("$name")
            else
                record "molecule:$name" "FAIL (no molecule/$name/molecule.yml)" "-"
            fi
        done
        if [ "${#known[@]}" -gt 0 ]; then
            step molecule:cleanup cleanup "${known[@]}"
            for name in "${known[@]}"; do
                step "molecule:$name" molecule test -s "$name" || molecule_failed "$name"
            done
        fi
    fi
fi

summary
