"""The folding worker of the web kill harness: `manage.py fold_trackable_messages --loop`, killable on cue.

With TRACKABLE_CHAOS_ARM_FILE set, the worker SIGKILLs itself whenever that file exists at one of two
moments: right after a batch committed and before it is acked (the worst moment for exactly-once),
or between two folds (holding nothing). It first writes which moment to <arm file>.how. The harness
creates the file to schedule a kill. Without it, this is the plain command; the harness SIGKILLs it
at random.
"""
import os
import signal
import sys
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

from trackable import folding  # noqa: E402
from trackable.management.commands import fold_trackable_messages as command  # noqa: E402

ARM_FILE = os.environ.get("TRACKABLE_CHAOS_ARM_FILE")
_real_ack, _real_fold = folding._ack, command.process_messages


def _die_if_armed(moment: str) -> None:
    if ARM_FILE and os.path.exists(ARM_FILE):
        Path(ARM_FILE + ".how").write_text(moment)
        os.remove(ARM_FILE)
        os.kill(os.getpid(), signal.SIGKILL)


def _die_if_armed_then_ack(raws, channel):
    if raws:
        _die_if_armed("between_commit_and_ack")
    _real_ack(raws, channel)


def _fold_then_die_if_armed(*args, **kwargs):
    result = _real_fold(*args, **kwargs)
    _die_if_armed("between_folds")
    return result


folding._ack = _die_if_armed_then_ack
command.process_messages = _fold_then_die_if_armed

if __name__ == "__main__":
    call_command("fold_trackable_messages", "--loop", "--interval", sys.argv[1] if len(sys.argv) > 1 else "0.5")
