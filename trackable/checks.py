"""System checks: misconfiguration is reported at startup, with the fix, not on the thousandth request.

Ids: trackable.E001 broker URL unusable · E002 no folder for filesystem:// · E003 unknown time zone ·
E004 a setting has the wrong type · E005 database without an upsert · W001 deprecated setting name.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router

from trackable.conf import DEPRECATED_NAMES, PREFIX, settings

__all__ = ["check_settings", "check_registry"]

_TYPES: dict[str, tuple[type, ...]] = {
    "COLLECTION_PERIOD": (int, float),
    "BATCH_SIZE": (int,),
    "CONNECT_TIMEOUT": (int, float),
    "LEDGER_RETENTION": (int, float),
    "MAX_MESSAGE_BYTES": (int,),
    "BROKER_TRANSPORT_OPTIONS": (dict,),
    "BUFFER_MAX_DELAY": (int, float),
}


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check the TRACKABLE_* settings."""
    errors: list[checks.CheckMessage] = []
    for name, types in _TYPES.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, types) or (not isinstance(value, dict) and value <= 0):
            errors.append(
                checks.Error(
                    f"{PREFIX}{name} is {value!r}; it must be a positive {' or '.join(t.__name__ for t in types)}.",
                    hint=f"Fix {PREFIX}{name} in your settings or remove it to use the default.",
                    id="trackable.E004",
                )
            )
    max_events = settings.BUFFER_MAX_EVENTS
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 0:
        errors.append(
            checks.Error(
                f"{PREFIX}BUFFER_MAX_EVENTS is {max_events!r}; it must be an int, 0 to send without a buffer.",
                hint=f"Fix {PREFIX}BUFFER_MAX_EVENTS in your settings or remove it to use the default.",
                id="trackable.E004",
            )
        )
    url = settings.broker_url
    if url.startswith("filesystem:"):
        if settings.queue_dir is None:
            errors.append(
                checks.Error(
                    "The trackable broker is filesystem:// but no folder is set for it.",
                    hint="Set TRACKABLE_QUEUE_DIR (or BASE_DIR), or point TRACKABLE_BROKER_URL at RabbitMQ or Redis.",
                    id="trackable.E002",
                )
            )
    else:
        try:
            from kombu import Connection

            Connection(url).transport  # noqa: B018 - builds the transport (no I/O): checks scheme and client library
        except (ImportError, KeyError, ValueError) as err:
            errors.append(
                checks.Error(
                    f"The trackable broker URL {url!r} is unusable: {err}.",
                    hint="Set TRACKABLE_BROKER_URL (or CELERY_BROKER_URL) to amqp://, redis:// or filesystem://, and "
                    "install the client library of that broker (e.g. pip install redis).",
                    id="trackable.E001",
                )
            )
    try:
        from trackable.buckets import get_zone

        get_zone(settings.time_zone)
    except ImproperlyConfigured as err:
        errors.append(checks.Error(str(err), id="trackable.E003"))
    for old, new in DEPRECATED_NAMES.items():
        if hasattr(django_settings, PREFIX + old):
            errors.append(
                checks.Warning(
                    f"{PREFIX}{old} is a misspelling kept for the original django-trackable; it still works.",
                    hint=f"Rename it to {PREFIX}{new}.",
                    id="trackable.W001",
                )
            )
    return errors


def check_registry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check that every registered data model lives on a database the fold can upsert into."""
    from trackable.models import FoldedMessage
    from trackable.sites import site

    errors: list[checks.CheckMessage] = []
    ledger_db = router.db_for_write(FoldedMessage)
    for dm in site.data_models():
        db = router.db_for_write(dm)
        vendor = connections[db].vendor
        if vendor not in {"postgresql", "sqlite", "mysql"}:
            errors.append(
                checks.Error(
                    f"{dm._meta.label} is stored in a {vendor} database, which django-trackable cannot upsert into.",
                    hint="Route trackable data models to PostgreSQL, SQLite or MySQL/MariaDB.",
                    obj=dm,
                    id="trackable.E005",
                )
            )
        elif db != ledger_db:
            errors.append(
                checks.Error(
                    f"{dm._meta.label} is written to database {db!r} but the trackable ledger to {ledger_db!r}; "
                    "exactly-once folding needs both in one transaction.",
                    hint="Route trackable.FoldedMessage and your data models to the same database.",
                    obj=dm,
                    id="trackable.E005",
                )
            )
    return errors
