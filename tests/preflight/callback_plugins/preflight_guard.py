"""Stops ansible-playbook the moment a play other than the preflight starts.

The bad-inventory tests run the real site.yml against this machine. Should a check ever stop
catching its case, the next play would start installing Ray here; with this guard on the
callback path it exits first (status 99, a line on stdout saying why), so the regression is a
failed test and the machine stays as it was. Loaded without being enabled by name
(CALLBACK_NEEDS_ENABLED = False): the tests only add its directory to ANSIBLE_CALLBACK_PLUGINS.
"""

from __future__ import annotations

import os
import sys

from ansible.plugins.callback import CallbackBase

# Plays whose name starts with this are the preflight; anything else may change a host.
PREFLIGHT_PREFIX = "Preflight"
EXIT_STATUS = 99


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "preflight_guard"
    CALLBACK_NEEDS_ENABLED = False

    def v2_playbook_on_play_start(self, play):
        name = (play.get_name() or "").strip()
        if name.startswith(PREFLIGHT_PREFIX):
            return
        sys.stdout.write(
            f"\nPREFLIGHT GUARD: play {name!r} started after the preflight passed; "
            f"exiting {EXIT_STATUS} before it changes anything\n"
        )
        sys.stdout.flush()
        os._exit(EXIT_STATUS)
