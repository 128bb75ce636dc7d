"""The folding worker of the web kill harness: `manage.py fold_trackable_messages --loop`, killable on cue.

With TRACKABLE_CHAOS_ARM_FILE set, the worker SIGKILLs itself right after a batch committed and
before it is acked whenever that file exists (the harness creates it to schedule a kill at the worst
moment for exactly-once). Without it, this is the plain command; the harness SIGKILLs it at random.
"""
import os
import signal
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

from trackable import folding  # noqa: E402

ARM_FILE = os.environ.get("TRACKABLE_CHAOS_ARM_FILE")
_real_ack = folding._ack


def _die_if_armed_then_ack(raws, channel):
    if raws and ARM_FILE and os.path.exists(ARM_FILE):
        os.remove(ARM_FILE)
        os.kill(os.getpid(), signal.SIGKILL)
    _real_ack(raws, channel)


folding._ack = _die_if_armed_then_ack

if __name__ == "__main__":
    call_command("fold_trackable_messages", "--loop", "--interval", sys.argv[1] if len(sys.argv) > 1 else "0.5")
