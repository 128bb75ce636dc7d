"""System checks: misconfiguration is reported at startup, with the fix, not on the thousandth request.

Ids: trackable.E001 broker URL unusable · E002 no folder for filesystem:// · E003 unknown time zone ·
E004 a numeric setting is not a number in its range · E005 database without an upsert · W001 deprecated
setting name · E006 bad spider_fields on a data model · E007 bad spider pattern setting · E008 google-re2 missing ·
W002 spider dataset missing · E020 a flag setting is not True/False · E021 a setting has the wrong type · E022 a
dotted path setting cannot be imported or is not callable · E030 the journal folder is missing, not
creatable or not writable · W030 a setting of a mechanism the journal replaced. The type/range checks come
from one table, SETTING_RULES: add a row for each new setting. E040 a UniqueVisitors field is misdeclared ·
E041 UniqueVisitors fields without the datasketches package.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.utils.module_loading import import_string

from trackable.conf import DEFAULTS, DEPRECATED_NAMES, PREFIX, REPLACED_NAMES, settings
from trackable.exceptions import TrackableDeprecationWarning
from trackable.visitors import IDENTITIES, ROTATIONS

__all__ = [
    "check_settings",
    "check_registry",
    "check_spiders",
    "check_setting_values",
    "check_journal",
    "SETTING_RULES",
    "Rule",
    "check_uniques",
]


@dataclass(frozen=True)
class Rule:
    """What a setting must be: `accepts(value)` is true for good values; `requirement` says it in words."""

    check_id: str
    requirement: str
    accepts: Callable[[Any], bool]


def _is_number(value: Any, ints: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if ints else (int, float)):
        return False
    return ints or math.isfinite(value)


def number(requirement: str, *, ints: bool = False, low: float = 0, open_low: bool = False, high: float = math.inf,
           optional: bool = False) -> Rule:
    """A number from `low` (excluded if open_low) to `high`; None too if optional (E004)."""

    def accepts(value: Any) -> bool:
        if value is None:
            return optional
        return _is_number(value, ints) and (value > low if open_low else value >= low) and value <= high

    return Rule("trackable.E004", requirement, accepts)


def flag(optional: bool = False) -> Rule:
    """True or False (E020); None too if optional."""
    return Rule("trackable.E020", "True or False" + (" (or None)" if optional else ""),
                lambda v: isinstance(v, bool) or (optional and v is None))


def typed(requirement: str, accepts: Callable[[Any], bool]) -> Rule:
    """Any other type (E021)."""
    return Rule("trackable.E021", requirement, accepts)


def _strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _callable_path(value: Any) -> bool:
    if callable(value):
        return True
    try:
        return isinstance(value, str) and callable(import_string(value))
    except ImportError:
        return False


# Setting (without the TRACKABLE_ prefix) → what it must be.
SETTING_RULES: dict[str, Rule] = {
    "COLLECTION_PERIOD": number("a positive int or float", open_low=True),
    "DISABLE_COLLECTION_TASK": flag(),
    "BATCH_SIZE": number("a positive int", ints=True, low=1),
    "BROKER_URL": typed("a broker URL string or None", lambda v: v is None or isinstance(v, str)),
    "BROKER_TRANSPORT_OPTIONS": typed("a dict", lambda v: isinstance(v, dict)),
    "QUEUE_DIR": typed("a folder (str or Path) or None", lambda v: v is None or isinstance(v, (str, os.PathLike))),
    "QUEUE_PREFIX": typed("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    "QUEUE_ARGUMENTS": typed("a dict of queue arguments", lambda v: isinstance(v, dict)),
    "CONNECT_TIMEOUT": number("a positive int or float", open_low=True),
    "PUBLISH_CONFIRMS": flag(),
    "JOURNAL": flag(),
    "JOURNAL_DIR": typed("a folder (str or Path) or None", lambda v: v is None or isinstance(v, (str, os.PathLike))),
    "JOURNAL_MAX_BYTES": number("a positive int", ints=True, low=1),
    "JOURNAL_RELAY_INTERVAL": number("a positive int or float", open_low=True),
    "JOURNAL_EXIT_TIMEOUT": number("a positive int or float", open_low=True),
    "JOURNAL_FSYNC": flag(),
    "CAPTURE_CONNECTION_ERRORS": flag(),
    "OUTAGE_MAIL_INTERVAL": number("a number of seconds (0: never mail)"),
    "REMOVE_MALFORMED_MESSAGES": flag(),
    "MAX_MESSAGE_BYTES": number("a positive int", ints=True, low=1),
    "LEDGER_RETENTION": number("a positive int or float", open_low=True),
    "TIME_ZONE": typed("an IANA zone name or None", lambda v: v is None or isinstance(v, str)),
    "USER_AGENT_FILTERING": flag(),
    "EMPTY_USER_AGENT_IS_SPIDER": flag(),
    "SPIDER_DATASET": flag(),
    "SPIDER_DATASET_EXCLUDE": typed("a list of pattern strings or None", lambda v: v is None or _strings(v)),
    "HUMAN_USER_AGENTS": typed("a list of pattern strings or None", lambda v: v is None or _strings(v)),
    "SPIDER_REFRESH_INTERVAL": number("a number of seconds (0: never)"),
    "USER_AGENT_MAX_LENGTH": number("a positive int", ints=True, low=1),
    "SPIDER_CACHE_SIZE": number("a positive int", ints=True, low=1),
    "AUTODISCOVER_MODULE": typed("a module name string", lambda v: isinstance(v, str) and bool(v)),
    "REGISTER_ADMIN": flag(optional=True),
    "IMPORT_URLS": typed('a dict of URL name → "app_label.Model.field"', lambda v: isinstance(v, dict)),
    "IMPORT_CHUNK_LINES": number("a positive int", ints=True, low=1),
    "API_PERMISSION": Rule("trackable.E022", "the dotted path of a callable(request) -> bool", _callable_path),
    "LINK_MAX_AGE": number("a positive number of seconds or None (never expire)", open_low=True, optional=True),
    "LINK_REPLAY_LIMIT": number("an int of 0 or more (0: no limit)", ints=True),
    "LINK_REPLAY_WINDOW": number("a positive number of seconds", open_low=True),
    "DEFAULT_WINDOW_DAYS": number("a whole number of days from 1 to 3660", ints=True, low=1, high=3660),
    "BREAKDOWN_MAX_VALUES": number("a whole number of values from 1 to 100000", ints=True, low=1, high=100_000),
    "PAGE_VIEWS_EXCLUDE": typed("a list of path prefix strings or None", lambda v: v is None or _strings(v)),
    "VISITOR_IDENTITY": typed(f"one of {', '.join(map(repr, IDENTITIES))}", lambda v: v in IDENTITIES),
    "VISITOR_SALT_ROTATION": typed(f"one of {', '.join(map(repr, ROTATIONS))}", lambda v: v in ROTATIONS),
}


def _bad_setting(name: str, value: Any, requirement: str, check_id: str = "trackable.E004") -> checks.Error:
    """Return the error for a setting whose value does not meet `requirement`, with a hint naming the fix."""
    default = DEFAULTS.get(name)
    return checks.Error(
        f"{PREFIX}{name} is {value!r}; it must be {requirement}.",
        hint=f"Set {PREFIX}{name} to {requirement} in your settings (e.g. {PREFIX}{name} = {default!r}, the default), "
        "or remove it to use the default.",
        id=check_id,
    )


def _unusable_broker(url: str, err: Exception) -> checks.Error:
    """Return the E001 error for a broker URL kombu cannot use, naming the missing module if one is."""
    scheme = url.split("://", 1)[0]
    if isinstance(err, ImportError):
        missing = getattr(err, "name", None)
        what = f"the Python module {missing!r}" if missing else "the client library named above"
        hint = f"Install {what}, which kombu's {scheme}:// transport imports"
        if scheme in {"redis", "rediss", "sentinel"}:
            hint += ': pip install "django-trackable[redis]" installs kombu[redis] with the versions it needs'
        hint += "."
    else:
        hint = "Set TRACKABLE_BROKER_URL (or CELERY_BROKER_URL) to amqp://, redis:// or filesystem://."
    return checks.Error(f"The trackable broker URL {url!r} is unusable: {err}.", hint=hint, id="trackable.E001")


def check_setting_values() -> list[checks.CheckMessage]:
    """Return one error per TRACKABLE_* setting of SETTING_RULES whose value breaks its rule."""
    errors: list[checks.CheckMessage] = []
    for name, rule in SETTING_RULES.items():
        with warnings.catch_warnings():  # a deprecated spelling is W001's to report
            warnings.simplefilter("ignore", TrackableDeprecationWarning)
            value = getattr(settings, name)
        if not rule.accepts(value):
            errors.append(_bad_setting(name, value, rule.requirement, rule.check_id))
    return errors


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check the TRACKABLE_* settings."""
    errors: list[checks.CheckMessage] = check_setting_values()
    url = settings.broker_url
    if url.startswith("filesystem:"):
        if settings.queue_dir is None:
            errors.append(
                checks.Error(
                    "The trackable broker is filesystem:// but no folder is set for it.",
                    hint="Set TRACKABLE_QUEUE_DIR (or kombu's data_folder_in/data_folder_out in "
                    "TRACKABLE_BROKER_TRANSPORT_OPTIONS or CELERY_BROKER_TRANSPORT_OPTIONS, or BASE_DIR), "
                    "or point TRACKABLE_BROKER_URL at RabbitMQ or Redis.",
                    id="trackable.E002",
                )
            )
    else:
        try:
            from kombu import Connection

            Connection(url).transport  # noqa: B018 - builds the transport (no I/O): checks scheme and client library
        except (ImportError, KeyError, ValueError) as err:
            errors.append(_unusable_broker(url, err))
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
    for name, instead in REPLACED_NAMES.items():
        if hasattr(django_settings, PREFIX + name):
            errors.append(
                checks.Warning(
                    f"{PREFIX}{name} belongs to a mechanism the journal replaced; it is ignored.",
                    hint=f"{instead[0].upper()}{instead[1:]}.",
                    id="trackable.W030",
                )
            )
    errors.extend(check_journal())
    return errors


def check_journal() -> list[checks.CheckMessage]:
    """Check that the journal folder exists (or can be created) and is writable, when the journal is on."""
    if settings.JOURNAL is not True:
        return []
    folder = settings.journal_dir
    fix = (
        "Set TRACKABLE_JOURNAL_DIR to a writable folder on a local disk, or TRACKABLE_JOURNAL = False to publish "
        "from the request."
    )
    if folder is None:
        problem = "The trackable journal has no folder (TRACKABLE_JOURNAL_DIR is not set and there is no BASE_DIR)."
    else:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            problem = f"The trackable journal folder {str(folder)!r} cannot be created: {err.strerror or err}."
        else:
            if not folder.is_dir():
                problem = f"The trackable journal folder {str(folder)!r} is not a folder."
            elif not os.access(folder, os.W_OK | os.X_OK):
                problem = f"The trackable journal folder {str(folder)!r} is not writable by this process."
            else:
                return []
    return [checks.Error(problem, hint=fix, id="trackable.E030")]


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
    try:
        import re2  # noqa: F401 - spider patterns are compiled with RE2 only
    except ImportError:
        errors.append(
            checks.Error(
                "google-re2 cannot be imported, and spider patterns are matched with RE2 only.",
                hint="pip install google-re2 (a dependency of django-trackable; reinstall django-trackable).",
                id="trackable.E008",
            )
        )
        return errors
    for name in ("SPIDER_DATASET_EXCLUDE", "HUMAN_USER_AGENTS"):
        patterns = getattr(settings, name)
        for pattern in patterns if _strings(patterns) else ():  # another type is E021 of check_settings
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

    from trackable.models import PageViews, TrackableData, counter_fields
    from trackable.sites import site

    errors: list[checks.CheckMessage] = []
    registered = set(site.data_models())
    for model in apps.get_models() if candidates is None else candidates:
        if not issubclass(model, TrackableData) or model._meta.proxy or model is PageViews:
            continue  # the built-in PageViews is registered only when PageViewMiddleware is installed
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
                    f"The data model {model._meta.label} is not registered with trackable.site, so nothing is ever "
                    f"counted into it.",
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
        return [
            checks.Error(str(err), hint="Name a callable (path, resolver_match) -> (object, field) | None.", id="trackable.E011")
        ]
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
    """Check every UniqueVisitors field of the installed models (the TRACKABLE_VISITOR_* settings are in SETTING_RULES)."""
    from django.apps import apps

    from trackable.fields import unique_fields

    errors: list[checks.CheckMessage] = []
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
                    id="trackable.E041",
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
        problems.append(
            (
                f"counts the visitors of {', '.join(map(repr, unknown))}, which are not counter fields of {model.__name__}",
                f"Name counter fields of {model.__name__} in of=, or leave it out to count every event's visitor.",
            )
        )
    if isinstance(field.lg_k, bool) or not isinstance(field.lg_k, int) or not 4 <= field.lg_k <= 21:
        problems.append((f"has lg_k={field.lg_k!r}, outside 4–21", "Leave lg_k out (12) or choose an integer from 4 to 21."))
    return [checks.Error(f"{where} {text}.", hint=hint, obj=model, id="trackable.E040") for text, hint in problems]
