#!/usr/bin/env bash
# Make sure a Docker engine answers, for Molecule and the lab (both run systemd containers).
#   - `docker info` answers: nothing to do (idempotent; never restarts a running engine).
#   - no `dockerd`: install Debian's docker.io with apt-get.
#   - then start `dockerd` in the background (this machine has no systemd to start it) with
#     its log in /var/log/rayforge-dockerd.log, and wait until `docker info` answers.
# Fails loudly, with the tail of the engine's log, when it does not come up in time.
# Everything goes to stderr. Environment: RAYFORGE_DOCKER_WAIT (seconds, default 90).
set -euo pipefail

log=/var/log/rayforge-dockerd.log
wait_s=${RAYFORGE_DOCKER_WAIT:-90}

say() { echo "ensure-docker: $*" >&2; }

answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then
    say "docker engine answers; nothing to do"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    say "installing docker.io with apt-get"
    [ "$(id -u)" -eq 0 ] || { say "must run as root to install docker.io"; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq docker.io >&2
fi

# A dockerd of ours may already be starting (a concurrent run): only start one if none runs.
if pgrep -x dockerd >/dev/null 2>&1; then
    say "dockerd is running (pid $(pgrep -x dockerd | head -n1)) but does not answer yet; waiting"
else
    say "starting dockerd in the background (log: $log)"
    echo "=== ensure-docker: starting dockerd at $(date -Is)" >>"$log"
    # setsid: the engine must outlive this script and the shell or CI job that started it. Every
    # descriptor but 0-2 is closed first: an inherited pipe (a caller's `| tee`, bash's
    # `> >(tee ...)`) held open by the engine would keep that caller waiting for its end forever.
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
        done
        exec nohup setsid dockerd >>"$log" 2>&1 </dev/null
    ) &
fi

for ((i = 0; i < wait_s; i++)); do
    if answers; then
        say "docker engine answers after ${i}s"
        exit 0
    fi
    sleep 1
done

say "ERROR: docker engine did not answer within ${wait_s}s. Last lines of $log:"
tail -n 40 "$log" >&2 2>/dev/null || say "(no log at $log)"
exit 1
