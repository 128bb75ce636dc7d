"""System checks: misconfiguration is reported at startup, with the fix, not on the thousandth request.

Ids: trackable.E001 broker URL unusable · E002 no folder for filesystem:// · E003 unknown time zone ·
E004 a setting has the wrong type · E005 database without an upsert · W001 deprecated setting name ·
E006 bad spider_fields on a data model · E007 bad spider pattern setting · W002 spider dataset missing ·
E020 a TRACKABLE_VISITOR_* setting is not one of its choices · E021 a UniqueVisitors field is misdeclared ·
E022 UniqueVisitors fields without the datasketches package.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router

from trackable.conf import DEPRECATED_NAMES, PREFIX, settings

__all__ = ["check_settings", "check_registry", "check_spiders", "check_uniques"]

_TYPES: dict[str, tuple[type, ...]] = {
    "COLLECTION_PERIOD": (int, float),
    "BATCH_SIZE": (int,),
    "CONNECT_TIMEOUT": (int, float),
    "LEDGER_RETENTION": (int, float),
    "MAX_MESSAGE_BYTES": (int,),
    "BROKER_TRANSPORT_OPTIONS": (dict,),
    "USER_AGENT_MAX_LENGTH": (int,),
    "SPIDER_CACHE_SIZE": (int,),
    "BUFFER_MAX_DELAY": (int, float),
}


def _bad_setting(name: str, value: Any, requirement: str) -> checks.Error:
    """Return the E004 error for a setting whose value does not meet `requirement`."""
    return checks.Error(
        f"{PREFIX}{name} is {value!r}; it must be {requirement}.",
        hint=f"Fix {PREFIX}{name} in your settings or remove it to use the default.",
        id="trackable.E004",
    )


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check the TRACKABLE_* settings."""
    errors: list[checks.CheckMessage] = []
    for name, types in _TYPES.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, types) or (not isinstance(value, dict) and value <= 0):
            errors.append(_bad_setting(name, value, f"a positive {' or '.join(t.__name__ for t in types)}"))
    max_events = settings.BUFFER_MAX_EVENTS
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 0:
        errors.append(_bad_setting("BUFFER_MAX_EVENTS", max_events, "an int, 0 to send without a buffer"))
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


def check_spiders(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check the spider filtering settings and the `spider_fields` of registered data models."""
    from trackable import spiders
    from trackable.models import counter_fields
    from trackable.sites import site

    errors: list[checks.CheckMessage] = []
    interval = settings.SPIDER_REFRESH_INTERVAL
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
        errors.append(_bad_setting("SPIDER_REFRESH_INTERVAL", interval, "a number of seconds (0: never)"))
    for name in ("SPIDER_DATASET_EXCLUDE", "HUMAN_USER_AGENTS"):
        for pattern in getattr(settings, name) or ():
            try:
                spiders.check_pattern(pattern)
            except ValueError as err:
                errors.append(checks.Error(f"{PREFIX}{name}: {err}", id="trackable.E007"))
    if settings.USER_AGENT_FILTERING and settings.SPIDER_DATASET and not spiders.dataset_patterns():
        errors.append(
            checks.Warning(
                "Spider filtering is on but the crawler-user-agents dataset is not installed; only Spider rows apply.",
                hint="pip install django-trackable[spiders], or set TRACKABLE_SPIDER_DATASET = False to silence this.",
                id="trackable.W002",
            )
        )
    for dm in site.data_models():
        errors.extend(_check_spider_fields(dm, counter_fields(dm)))
    return errors


def _check_spider_fields(dm: Any, fields: tuple[str, ...]) -> list[checks.CheckMessage]:
    mapping = getattr(dm, "spider_fields", None)
    if mapping is None:
        return []
    if isinstance(mapping, dict):
        bad = [f"{k!r} → {v!r}" for k, v in mapping.items() if k not in fields or v not in fields or v in mapping]
    else:
        bad = [repr(mapping)]
    if not bad:
        return []
    return [
        checks.Error(
            f"{dm._meta.label}.spider_fields maps {', '.join(bad)}; it must map counter fields to other counter fields.",
            hint=f"Declare spider_fields as a dict such as {{'impressions': 'spider_impressions'}} "
            f"naming counter fields of {dm.__name__}.",
            obj=dm,
            id="trackable.E006",
        )
    ]


# -- operations: folding scheduled, data models usable, import and retention settings -------------
# Ids: trackable.W010 no fold scheduled · W011 data model never registered · W012 data model without
# counter fields (registering it fails) · E010 TRACKABLE_RETENTION unusable · E011 TRACKABLE_IMPORT_RESOLVER unusable.


def check_operations(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check that folds are scheduled and that data models, imports and retention can work."""
    return [*_check_schedule(), *_check_data_models(), *_check_resolver(), *_check_retention()]


def _check_schedule() -> list[checks.CheckMessage]:
    from trackable.schedule import SCHEDULE_NAME, TASK_NAME

    if not settings.DISABLE_COLLECTION_TASK:
        return []
    schedules = [getattr(django_settings, "CELERY_BEAT_SCHEDULE", None) or {}]
    try:
        from celery import current_app

        schedules.append(current_app.conf.beat_schedule or {})
    except ImportError:
        pass
    # trackable's own entry (SCHEDULE_NAME) may linger from before the setting changed: it does not count.
    if any(
        entry.get("task") == TASK_NAME and name != SCHEDULE_NAME for schedule in schedules for name, entry in schedule.items()
    ):
        return []
    return [
        checks.Warning(
            "TRACKABLE_DISABLE_COLLECTION_TASK is on and no Celery beat entry runs "
            f"{TASK_NAME}, so tracking messages pile up in the queues unfolded.",
            hint="Schedule that task in CELERY_BEAT_SCHEDULE, or run manage.py fold_trackable_messages --loop "
            "(or from cron) and add 'trackable.W010' to SILENCED_SYSTEM_CHECKS.",
            id="trackable.W010",
        )
    ]


def _check_data_models(candidates: Any = None) -> list[checks.CheckMessage]:
    from django.apps import apps

    from trackable.models import TrackableData, counter_fields
    from trackable.sites import site

    errors: list[checks.CheckMessage] = []
    registered = set(site.data_models())
    for model in apps.get_models() if candidates is None else candidates:
        if not issubclass(model, TrackableData) or model._meta.proxy:
            continue
        if not counter_fields(model):
            errors.append(
                checks.Warning(
                    f"The data model {model._meta.label} has no counter field, so it cannot count anything.",
                    hint="Add an integer field, e.g. impressions = models.PositiveIntegerField(default=0).",
                    obj=model,
                    id="trackable.W012",
                )
            )
        elif model not in registered:
            errors.append(
                checks.Warning(
                    f"The data model {model._meta.label} is not registered with trackable.site, so nothing is ever counted into it.",
                    hint=f"Call trackable.site.register(<parent model>, {model.__name__}) in a trackables.py module.",
                    obj=model,
                    id="trackable.W011",
                )
            )
    return errors


def _check_resolver() -> list[checks.CheckMessage]:
    from trackable.accesslog import get_resolver

    try:
        resolver = get_resolver()
    except ImproperlyConfigured as err:
        return [checks.Error(str(err), hint="Name a callable (path, resolver_match) -> (object, field) | None.", id="trackable.E011")]
    if not callable(resolver):
        return [
            checks.Error(
                f"TRACKABLE_IMPORT_RESOLVER names {resolver!r}, which is not callable.",
                hint="Name a callable (path, resolver_match) -> (object, field) | None.",
                id="trackable.E011",
            )
        ]
    return []


def _check_retention() -> list[checks.CheckMessage]:
    from trackable.retention import parse_policies

    try:
        parse_policies()
    except ImproperlyConfigured as err:
        return [checks.Error(str(err), hint="See the TRACKABLE_RETENTION setting in the docs.", id="trackable.E010")]
    return []


# -- unique visitors ----------------------------------------------------------------------------------


def check_uniques(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check the TRACKABLE_VISITOR_* settings and every UniqueVisitors field of the installed models."""
    from django.apps import apps

    from trackable.fields import unique_fields
    from trackable.visitors import IDENTITIES, ROTATIONS

    errors: list[checks.CheckMessage] = []
    for name, choices in (("VISITOR_IDENTITY", IDENTITIES), ("VISITOR_SALT_ROTATION", ROTATIONS)):
        value = getattr(settings, name)
        if value not in choices:
            errors.append(
                checks.Error(
                    f"{PREFIX}{name} is {value!r}; it must be one of {', '.join(map(repr, choices))}.",
                    hint=f"Fix {PREFIX}{name} in your settings or remove it to use the default.",
                    id="trackable.E020",
                )
            )
    declared = [(m, f) for m in apps.get_models() for f in unique_fields(m)]
    for model, field in declared:
        errors.extend(_check_unique_field(model, field))
    if declared:
        try:
            import datasketches  # noqa: F401
        except ImportError:
            errors.append(
                checks.Error(
                    f"{declared[0][0]._meta.label}.{declared[0][1].name} is a UniqueVisitors field, but the datasketches "
                    "package is not installed, so no fold can merge its sketches.",
                    hint="pip install 'django-trackable[uniques]'.",
                    id="trackable.E022",
                )
            )
    return errors


def _check_unique_field(model: Any, field: Any) -> list[checks.CheckMessage]:
    from trackable.models import TrackableTimeSeriesData, counter_fields

    where = f"{model._meta.label}.{field.name}"
    problems = []
    if not issubclass(model, TrackableTimeSeriesData):
        problems.append(("is a UniqueVisitors field on a data model without buckets",
                         "Declare it on a subclass of trackable.TrackableTimeSeriesData."))
    unknown = [name for name in field.of or () if name not in counter_fields(model)]
    if unknown:
        problems.append((f"counts the visitors of {', '.join(map(repr, unknown))}, which are not counter fields of {model.__name__}",
                         f"Name counter fields of {model.__name__} in of=, or leave it out to count every event's visitor."))
    if isinstance(field.lg_k, bool) or not isinstance(field.lg_k, int) or not 4 <= field.lg_k <= 21:
        problems.append((f"has lg_k={field.lg_k!r}, outside 4–21", "Leave lg_k out (12) or choose an integer from 4 to 21."))
    return [checks.Error(f"{where} {text}.", hint=hint, obj=model, id="trackable.E021") for text, hint in problems]
