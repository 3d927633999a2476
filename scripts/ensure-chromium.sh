#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is on the controller, for the suite's browser
# test of Prometheus' console pages (molecule/cluster/tests/test_consoles.py).
#   - `chromium --version` answers: nothing to do (idempotent).
#   - else install Debian's `chromium` package with apt-get (no recommends), as root.
# Everything goes to stderr; prints the browser's path on stdout.
set -euo pipefail

say() { echo "ensure-chromium: $*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { say "must run as root to install chromium"; exit 1; }
    say "installing Debian's chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends chromium >&2 \
        || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends chromium >&2; }
fi
say "$(chromium --version 2>/dev/null || echo 'chromium does not answer --version')"
command -v chromium
