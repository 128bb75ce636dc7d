"""Fold everything queued in this process and print its counts and peak resident memory (VmHWM) as JSON."""
import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from trackable import folding  # noqa: E402


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    result = folding.process_messages(idle_timeout=1.0)
    print(
        json.dumps(
            {"messages": result.messages, "malformed": result.malformed, "reasons": result.reasons, "peak_rss_mb": peak_rss_mb()}
        )
    )
