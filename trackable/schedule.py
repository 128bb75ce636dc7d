"""The periodic fold's Celery names and beat entry; importable without Celery installed."""
from __future__ import annotations

from typing import Any

from trackable.conf import settings

__all__ = ["TASK_NAME", "SCHEDULE_NAME", "install_schedule"]

TASK_NAME = "trackable.tasks.CollectTrackingData"  # the original's name; existing schedules keep working
SCHEDULE_NAME = "trackable: fold tracking messages"


def install_schedule(app: Any) -> bool:
    """Add the periodic fold to `app`'s beat schedule unless disabled; return whether it was added."""
    if settings.DISABLE_COLLECTION_TASK:
        return False
    schedule = app.conf.beat_schedule
    if SCHEDULE_NAME not in schedule:
        schedule[SCHEDULE_NAME] = {"task": TASK_NAME, "schedule": float(settings.COLLECTION_PERIOD)}
    return True
