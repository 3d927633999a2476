#!/usr/bin/env bash
# Build the systemd host image used by the lab and the Molecule scenarios, without any registry:
# debootstrap a Debian rootfs from this machine's own apt mirror, then `docker import` it.
#   scripts/build-host-image.sh            build once, reuse the tag afterwards
#   scripts/build-host-image.sh --rebuild  build from the recipe even when the tag exists (CI)
#   RAYFORGE_IMAGE_SUITE=trixie scripts/build-host-image.sh   a Debian 13 host (default bookworm)
# The tag carries a hash of the recipe, the mirror and the CA bundle copied in, so the image is
# rebuilt when any of them changes. The packages the mirror serves are not in the hash: a
# point release reaches an existing tag only through --rebuild.
# Prints the image reference on stdout. (docker import cannot set STOPSIGNAL: containers are
# created with stop_signal SIGRTMIN+3 so that `docker stop` shuts systemd down cleanly.)
set -euo pipefail

rebuild=0
case "${1:-}" in
    --rebuild) rebuild=1 ;;
    "") ;;
    *)
        echo "usage: $0 [--rebuild]" >&2
        exit 2
        ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
recipe_dir="$here/images/host"
suite=${RAYFORGE_IMAGE_SUITE:-bookworm}
repo=${RAYFORGE_IMAGE_REPO:-rayforge/host}
ca_bundle=${RAYFORGE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

# The mirror comes from the machine's own apt sources (deb822 or one-line format): the source
# that lists the suite, else the one that serves the machine's own release (a Debian mirror
# carries every current suite, but a bookworm machine only lists bookworm).
mirror() {
    local suite=$1 f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && $0 ~ /(^|[ \t])'"$suite"'([ \t]|$)/ {s=1}
                   /^$/ {if (u && s) {print u; done=1; exit} u=""; s=0}
                   END {if (!done && u && s) print u}' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1 == "deb" && $0 ~ /[ \t]'"$suite"'[ \t]/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    return 1
}
own_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirror_uri=$(mirror "$suite" || { [ -n "$own_suite" ] && mirror "$own_suite"; }) ||
    { echo "no apt source for '$suite' (nor '$own_suite') found in /etc/apt" >&2; exit 1; }
[ -r "$ca_bundle" ] || { echo "no CA bundle at $ca_bundle (set RAYFORGE_CA_BUNDLE)" >&2; exit 1; }

recipe_hash=$({ cat "${BASH_SOURCE[0]}" "$recipe_dir"/* "$ca_bundle"; echo "$mirror_uri"; } |
    sha256sum | cut -c1-12)
tag="$repo:$suite-$recipe_hash"

old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
if [ -n "$old_id" ] && [ "$rebuild" = 0 ]; then
    echo "$tag"
    exit 0
fi

command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
packages=$(grep -v '^\s*#' "$recipe_dir/packages.txt" | xargs | tr ' ' ',')

echo "building $tag from $mirror_uri (takes a few minutes, once)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror_uri" >&2
# The machine's HTTPS goes through a proxy with its own CA: hosts need it for pip.
cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
cp "$recipe_dir/setup-rootfs.sh" "$rootfs/tmp/setup-rootfs.sh"
chroot "$rootfs" /bin/sh /tmp/setup-rootfs.sh >&2
rm -f "$rootfs/tmp/setup-rootfs.sh"

tar -C "$rootfs" -c . | docker import \
    --change 'ENV container=docker' \
    --change 'CMD ["/lib/systemd/systemd"]' \
    - "$tag" >&2
# The image the tag named before a rebuild; left in place while a container still uses it.
if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "$tag"
