"""A fold that takes one batch and dies (SIGKILL) before committing it: its messages are in flight."""
import os
import signal

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from trackable import folding  # noqa: E402


def _die(batch, channel):
    print(f"taken {len(batch)}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


folding.fold_batch = _die

if __name__ == "__main__":
    folding.process_messages(batch_size=1000, idle_timeout=5.0)
