"""Reading an ansible-playbook log of the provisioning benchmark (bench/playbook.py).

Proves: changed and failed + unreachable are summed over every host of every PLAY RECAP; only
the hosts changed under "Wheelhouse is unpacked on the host" count as unpacked; profile_tasks'
times are read after TASKS RECAP, in order, with their role prefix; a log without recap or
task times gives zeros and no tasks.
"""

from __future__ import annotations

import pytest
from bench.playbook import parse_playbook_log

LOG = """\
PLAY [Ray nodes] ***************************************************************

TASK [ray_node : Wheelhouse is unpacked on the host] ***************************
changed: [head]
changed: [worker1]
ok: [worker2]

TASK [ray_node : Ray unit is installed] ****************************************
changed: [worker2]

PLAY RECAP *********************************************************************
head                       : ok=40   changed=2    unreachable=0    failed=0    skipped=3
worker1                    : ok=38   changed=1    unreachable=1    failed=0    skipped=3
worker2                    : ok=37   changed=3    unreachable=0    failed=2    skipped=3

Thursday 01 January 2026  00:00:00 +0000 (0:00:01.234)       0:00:30.000 *****
===============================================================================
TASKS RECAP ********************************************************************
ray_node : Wheelhouse is unpacked on the host -------------------------- 12.34s
ray_serve : Serve config is applied ------------------------------------- 3.50s
Gathering Facts --------------------------------------------------------- 0.75s
"""


def test_parse_playbook_log():
    changed, failed, unpacked, tasks = parse_playbook_log(LOG)
    assert changed == 2 + 1 + 3
    assert failed == 1 + 2
    assert unpacked == 2
    assert tasks == [
        ("ray_node : Wheelhouse is unpacked on the host", pytest.approx(12.34)),
        ("ray_serve : Serve config is applied", pytest.approx(3.5)),
        ("Gathering Facts", pytest.approx(0.75)),
    ]


def test_parse_playbook_log_of_a_run_that_never_started():
    assert parse_playbook_log("ERROR! the playbook: site.yml could not be found\n") == (0, 0, 0, [])
