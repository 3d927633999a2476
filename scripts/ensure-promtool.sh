#!/usr/bin/env bash
# Print the path of a promtool from Debian's prometheus package, the one the prometheus role
# installs on the monitoring host, for the rules' tests (tests/unit/test_alert_rules.py).
#   - the package's candidate version is asked of apt (its lists refreshed first, as root,
#     when it knows none, and again when the mirror no longer has that version's .deb);
#   - ${RAYFORGE_CACHE:-~/.cache/rayforge}/promtool-<version>/usr/bin/promtool is reused
#     when it runs;
#   - else the .deb is fetched with `apt-get download` into a temporary directory and
#     unpacked there with `dpkg-deb -x`, and only promtool is kept: nothing is installed and
#     no service is started, so root is not needed unless the lists are.
# stdout: the path alone; everything else goes to stderr. Fails when apt cannot give it.
set -euo pipefail

cache=${RAYFORGE_CACHE:-$HOME/.cache/rayforge}
package=prometheus

say() { echo "ensure-promtool: $*" >&2; }

candidate() { apt-cache policy "$package" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }'; }

version=$(candidate)
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        say "apt knows no $package package: refreshing its lists"
        apt-get update -qq >&2
        version=$(candidate)
    fi
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    say "apt has no candidate for $package (run apt-get update as root)"
    exit 1
fi

# An epoch's colon does not belong in a directory name.
dir="$cache/promtool-${version//:/_}"
bin="$dir/usr/bin/promtool"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# As root, apt downloads as its sandbox user _apt, which must be able to write there.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
    chown _apt "$tmp"
fi
say "downloading $package=$version with apt-get download"
if ! (cd "$tmp" && apt-get download -q "$package=$version" >&2); then
    # Lists older than the mirror name a .deb it no longer has: refresh them once (root only).
    [ "$(id -u)" -eq 0 ] || { say "apt-get download failed (run apt-get update as root)"; exit 1; }
    say "apt-get download failed: refreshing apt's lists and trying again"
    apt-get update -qq >&2
    version=$(candidate)
    dir="$cache/promtool-${version//:/_}"
    bin="$dir/usr/bin/promtool"
    (cd "$tmp" && apt-get download -q "$package=$version" >&2)
fi
deb=$(find "$tmp" -maxdepth 1 -name "${package}_*.deb" -print -quit)
if [ -z "$deb" ]; then
    say "apt-get download left no ${package}_*.deb"
    exit 1
fi
dpkg-deb -x "$deb" "$tmp/root"
if [ ! -x "$tmp/root/usr/bin/promtool" ]; then
    say "$(basename "$deb") has no usr/bin/promtool"
    exit 1
fi

# Put in place under a temporary name, then renamed: a concurrent run sees a whole binary.
mkdir -p "$dir/usr/bin"
cp "$tmp/root/usr/bin/promtool" "$bin.tmp.$$"
mv -f "$bin.tmp.$$" "$bin"
"$bin" --version >&2
echo "$bin"
