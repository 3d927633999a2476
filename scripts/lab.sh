#!/usr/bin/env bash
# The README's main command: build a lab of systemd containers (1 head + LAB_WORKERS
# workers, default 2) and roll the cluster out on it with site.yml.
#   scripts/lab.sh [up] [ansible-playbook args...]   e.g. scripts/lab.sh up -e lab_workers=4
#   scripts/lab.sh destroy
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

action=${1:-up}
[ $# -gt 0 ] && shift

scripts/ensure-docker.sh
venv=$(scripts/bootstrap.sh)
export PATH="$venv/bin:$PATH"
RAYFORGE_HOST_IMAGE=$(scripts/build-host-image.sh)
export RAYFORGE_HOST_IMAGE

case "$action" in
  up)
    ansible-playbook -i inventories/lab playbooks/lab.yml "$@"
    ansible-playbook -i inventories/lab site.yml "$@"
    # The ports as the inventory sets them (ray_serve's default when it does not).
    defaults="lookup('ansible.builtin.file', 'roles/ray_serve/defaults/main.yml') | from_yaml"
    ports="{{ ray_serve_http_port | default(($defaults).ray_serve_http_port) }}"
    ports="$ports {{ lab_load_balancer_published_port }}"
    read -r port lb_port < <(ansible -i inventories/lab localhost -m ansible.builtin.debug \
        -a "msg='$ports'" "$@" 2>/dev/null | sed -n 's/.*msg: \([0-9]*\) \([0-9]*\).*/\1 \2/p')
    cat <<MSG

The lab cluster is up. Serve answers on every node's :$port; the head's is published here:
  curl -X POST http://localhost:$port/score/salience \\
    -H 'Content-Type: application/json' \\
    -d '{"features": [{"task_risk": 0.5, "failure_severity": 0.3}]}'
The front load balancer (HAProxy over every node, health-checked) is published here:
  curl -X POST http://localhost:$lb_port/score/salience \\
    -H 'Content-Type: application/json' \\
    -d '{"features": [{"task_risk": 0.5, "failure_severity": 0.3}]}'
Status:   PATH="\$(scripts/bootstrap.sh)/bin:\$PATH" ansible-playbook -i inventories/lab playbooks/status.yml
Destroy:  make lab-destroy
MSG
    ;;
  destroy)
    ansible-playbook -i inventories/lab playbooks/lab.yml -e lab_state=absent "$@"
    ;;
  *)
    echo "usage: $0 [up|destroy] [ansible-playbook args...]" >&2
    exit 2
    ;;
esac
