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

from trackable.schedule import SCHEDULE_NAME, TASK_NAME, install_schedule

__all__ = ["CollectTrackingData", "fold_trackable_messages", "SCHEDULE_NAME", "TASK_NAME", "install_schedule"]

logger = logging.getLogger("trackable")


@shared_task(name=TASK_NAME, ignore_result=True)
def CollectTrackingData(data_models: list[str] | None = None, max_messages: int | None = None) -> dict[str, Any]:  # noqa: N802
    """Fold queued tracking messages into rows (all data models, or the labels given)."""
    from trackable.folding import process_messages

    return process_messages(data_models, max_messages=max_messages).as_dict()


fold_trackable_messages = CollectTrackingData


def _on_finalize(app: Any) -> None:
    try:
        install_schedule(app)
    except ImproperlyConfigured as err:  # a bare celery process without Django settings
        logger.warning("trackable: periodic fold not scheduled: %s", err)


connect_on_app_finalize(_on_finalize)
_current = get_current_app()
if _current.finalized:  # type: ignore[attr-defined]  # set in Celery.__init__; celery-types omits it
    _on_finalize(_current)
