"""Celery tasks (thin wrappers around process_messages) and the periodic schedule.

Importing this module (Celery's autodiscover_tasks() does) adds an entry to each Celery app's
``beat_schedule`` that folds every TRACKABLE_COLLECTION_PERIOD seconds, unless
TRACKABLE_DISABLE_COLLECTION_TASK is set. Plain beat runs it from there; django-celery-beat's
DatabaseScheduler copies it into its PeriodicTask table, so it shows in that admin too.
"""
from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery._state import connect_on_app_finalize, get_current_app

from django.core.exceptions import ImproperlyConfigured

from trackable.conf import settings

logger = logging.getLogger("trackable")

__all__ = ["CollectTrackingData", "fold_trackable_messages", "SCHEDULE_NAME", "install_schedule"]

TASK_NAME = "trackable.tasks.CollectTrackingData"  # the original's name; existing schedules keep working
SCHEDULE_NAME = "trackable: fold tracking messages"


@shared_task(name=TASK_NAME, ignore_result=True)
def CollectTrackingData(data_models: list[str] | None = None, max_messages: int | None = None) -> dict[str, Any]:  # noqa: N802
    """Fold queued tracking messages into rows (all data models, or the labels given)."""
    from trackable.folding import process_messages

    return process_messages(data_models, max_messages=max_messages).as_dict()


fold_trackable_messages = CollectTrackingData


def install_schedule(app: Any) -> bool:
    """Add the periodic fold to `app`'s beat schedule unless disabled; return whether it was added."""
    if settings.DISABLE_COLLECTION_TASK:
        return False
    schedule = app.conf.beat_schedule
    if SCHEDULE_NAME not in schedule:
        schedule[SCHEDULE_NAME] = {"task": TASK_NAME, "schedule": float(settings.COLLECTION_PERIOD)}
    return True


def _on_finalize(app: Any) -> None:
    try:
        install_schedule(app)
    except ImproperlyConfigured as err:  # a bare celery process without Django settings
        logger.warning("trackable: periodic fold not scheduled: %s", err)


connect_on_app_finalize(_on_finalize)
_current = get_current_app()
if _current.finalized:
    _on_finalize(_current)
