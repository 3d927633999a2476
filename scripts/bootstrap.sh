#!/usr/bin/env bash
# Build (once) the controller's tooling virtualenv and print its path on stdout.
#
#   venv=$(scripts/bootstrap.sh) && PATH="$venv/bin:$PATH"
#   venv=$(scripts/bootstrap.sh --controller) && PATH="$venv/bin:$PATH"
#
# Two kinds:
#   (default)     the development venv: requirements-dev.txt (Molecule, linters, Ray for the
#                 app's tests: about 1.1 GiB) and the project's app, editable;
#   --controller  what the playbooks need and nothing else: requirements-controller.txt
#                 (ansible-core with the collections requirements.yml names), which
#                 requirements-dev.txt includes, so the release is stated once.
#
# The venv is ${RAYFORGE_CACHE:-$HOME/.cache/rayforge}/<kind>-<hash> (venv-<hash> or
# controller-<hash>), <hash> being a short hash of its requirements files: editing one builds
# a new venv, an unchanged one is reused.
# A venv is not relocatable (console scripts carry its absolute path in their shebang), so it
# is built in a directory of its own, <kind>-<hash>.XXXXXX, and only when the install has
# finished is <kind>-<hash> made to point at it, by renaming a symlink over it (atomic). An
# interrupted install therefore leaves no <kind>-<hash>, and its directory is removed by the
# next run. A lock serialises concurrent runs for the same hash. The path printed is the
# real directory (what the venv's own scripts and sys.executable name).
#
# Then, every run:
#   - `ansible-galaxy collection install -r requirements.yml`: the `ansible` package bundles
#     those collections, so this finds them installed without Galaxy. If it fails anyway (it
#     tried the network), each collection is checked with `ansible-galaxy collection list`.
#   - (development venv only) the project's app (pyproject.toml, package `salience`) is
#     installed editable, when it is not already installed from this checkout.
#
# Environment: RAYFORGE_CACHE (cache root), RAYFORGE_PYTHON (interpreter, default python3).
# Everything but the venv path goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${RAYFORGE_CACHE:-$HOME/.cache/rayforge}
python=${RAYFORGE_PYTHON:-python3}
controller_reqs="$root/requirements-controller.txt"
case "${1:-}" in
    --controller) kind=controller reqs=$controller_reqs ;;
    "") kind=venv reqs="$root/requirements-dev.txt" ;;
    *) echo "usage: $0 [--controller]" >&2; exit 2 ;;
esac

say() { echo "bootstrap: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ -f "$reqs" ] || die "$reqs not found"
[ -f "$controller_reqs" ] || die "$controller_reqs not found"
command -v "$python" >/dev/null || die "no '$python' on PATH (set RAYFORGE_PYTHON)"
"$python" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
    die "$python must be Python >= 3.11 with the venv module (ansible-core needs 3.11+)"
# Debian and Ubuntu ship venv without ensurepip, which creating a venv with pip needs.
"$python" -c 'import ensurepip' 2>/dev/null ||
    die "$python cannot create a venv with pip (no ensurepip): on Debian or Ubuntu," \
        "apt install python3-venv"

hash=$(cat "$reqs" "$controller_reqs" | sha256sum | cut -c1-12)
# The cache root must be a directory we can write, on a file system with room (the venv
# alone takes about 1.1 GiB, the controller's about 0.5 GiB): say which path and which variable, not just mkdir's words.
if ! err=$({ mkdir -p -- "$cache" && probe=$(mktemp -p "$cache" .rayforge-probe.XXXXXX) &&
    { head -c 65536 /dev/zero >"$probe"; rc=$?; rm -f -- "$probe"; exit "$rc"; }; } 2>&1); then
    die "cannot create or write the cache root $cache (${err:-no reason given}): set RAYFORGE_CACHE" \
        "to a directory this user can write on a file system with free space (default \$HOME/.cache/rayforge)"
fi
venv="$cache/$kind-$hash"

# pip, minus the warnings this machine's pip config causes for each package (its extra
# index lists local directories that may not exist); everything else passes through.
pip_install() {
    "$@" 2> >(grep -v "^WARNING: Location 'file://.*' is ignored" >&2)
}

usable() {
    [ -L "$venv" ] && [ -f "$venv/.rayforge-complete" ] && "$venv/bin/python" -c '' 2>/dev/null
}

build() {
    local build_dir link
    # Leftovers of interrupted builds for this hash (we hold the lock: nobody else builds it).
    for build_dir in "$cache/$kind-$hash".* "$cache/.$kind-$hash".link-*; do
        [ -e "$build_dir" ] || [ -L "$build_dir" ] || continue
        [ "$(readlink -f "$venv" 2>/dev/null)" = "$(readlink -f "$build_dir")" ] && continue
        say "removing leftover $build_dir"
        rm -rf "$build_dir"
    done
    # A <kind>-<hash> that is not a complete venv of ours (a real dir, a dangling link): replace.
    if [ -e "$venv" ] || [ -L "$venv" ]; then
        say "replacing incomplete $venv"
        target=$(readlink -f "$venv" || true)
        case "$target" in "$cache"/"$kind"-"$hash".*) rm -rf "$target" ;; esac
        rm -rf "$venv"
    fi

    build_dir=$(mktemp -d "$cache/$kind-$hash.XXXXXX")
    chmod 755 "$build_dir"
    say "creating $venv from $(basename "$reqs") (takes a few minutes, once per change of it)"
    if ! { "$python" -m venv "$build_dir" >&2 &&
        pip_install "$build_dir/bin/python" -m pip install --quiet --upgrade pip >&2 &&
        pip_install "$build_dir/bin/python" -m pip install --quiet -r "$reqs" >&2; }; then
        rm -rf "$build_dir"
        die "installing $(basename "$reqs") failed (see pip's output above)"
    fi
    echo "$hash" >"$build_dir/.rayforge-complete"
    link="$cache/.$kind-$hash.link-$$"
    ln -s "$(basename "$build_dir")" "$link"
    mv -T "$link" "$venv"
    say "venv ready: $venv -> $(basename "$build_dir")"
}

exec 9>"$cache/.$kind-$hash.lock"
flock 9
usable || build
flock -u 9

venv=$(readlink -f "$venv")
export PATH="$venv/bin:$PATH"

# Collections. Exits 0 with "Nothing to do" when the bundled ones satisfy requirements.yml.
if [ -f "$root/requirements.yml" ]; then
    say "ansible-galaxy collection install -r requirements.yml"
    if ! (cd "$root" && timeout 120 ansible-galaxy collection install -r requirements.yml >&2); then
        say "collection install failed (no Galaxy here?); checking the installed collections"
        installed=$(cd "$root" && ansible-galaxy collection list --format json 2>/dev/null)
        INSTALLED="$installed" python - "$root/requirements.yml" <<'EOF' >&2 || exit 1
import json, os, sys
import yaml

wanted = yaml.safe_load(open(sys.argv[1], encoding="utf-8")).get("collections") or []
names = {c if isinstance(c, str) else c["name"] for c in wanted}
have = set()
for collections in json.loads(os.environ["INSTALLED"] or "{}").values():
    have.update(collections)
missing = sorted(names - have)
for name in sorted(names & have):
    print(f"bootstrap: collection {name} present")
if missing:
    print(f"bootstrap: ERROR: collections missing and not installable: {', '.join(missing)}")
    sys.exit(1)
EOF
    fi
fi

# The app, editable, when it is not already installed from this checkout (CI clones elsewhere).
if [ "$kind" = controller ]; then
    : # the controller builds the app's wheel with pip, into the wheelhouse; it needs no install
elif [ -f "$root/pyproject.toml" ]; then
    where=$(cd / && python -c 'import os, salience; print(os.path.dirname(salience.__file__))' 2>/dev/null) ||
        where=none
    if [ "$where" != "$root/app/src/salience" ]; then
        say "pip install -e $root (the app: package salience)"
        pip_install python -m pip install --quiet -e "$root" >&2
    else
        say "app already installed editable from $root"
    fi
else
    say "no pyproject.toml in $root: app not installed"
fi

echo "$venv"
