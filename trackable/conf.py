"""The TRACKABLE_* settings, read lazily and cached until Django's setting_changed signal."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from trackable.exceptions import TrackableDeprecationWarning

__all__ = ["settings", "TrackableSettings", "DEFAULTS", "PREFIX", "DEPRECATED_NAMES", "REPLACED_NAMES", "warn_replaced"]

PREFIX = "TRACKABLE_"

DEFAULTS: dict[str, Any] = {
    # Folding: how often the periodic Celery task runs, and whether it is scheduled at all.
    "COLLECTION_PERIOD": 1800,
    "DISABLE_COLLECTION_TASK": False,
    "BATCH_SIZE": 1000,
    # Broker: None means Celery's broker (CELERY_BROKER_URL / BROKER_URL), then filesystem://.
    "BROKER_URL": None,
    "BROKER_TRANSPORT_OPTIONS": {},
    "QUEUE_DIR": None,  # folder of the filesystem:// transport; None: kombu's data_folder_in, else BASE_DIR / "trackable-queue"
    "QUEUE_PREFIX": "trackable",
    "QUEUE_ARGUMENTS": {},  # arguments of every declared queue, e.g. {"x-queue-type": "quorum"} on RabbitMQ
    "CONNECT_TIMEOUT": 1.0,  # seconds the request path may wait for the broker
    "PUBLISH_CONFIRMS": True,  # amqp://: wait for the broker's confirm, so no publish is lost silently
    # The journal (trackable/journal.py, trackable/relay.py): each send appends to a local file that a
    # background thread relays to the broker. False: publish from the request (no journal).
    "JOURNAL": True,
    "JOURNAL_DIR": None,  # None: BASE_DIR / "trackable-journal"
    "JOURNAL_MAX_BYTES": 1024**3,  # unrelayed bytes on disk past which sends are refused (and counted)
    "JOURNAL_RELAY_INTERVAL": 0.5,  # seconds between two relays of a process's journal
    "JOURNAL_EXIT_TIMEOUT": 5.0,  # seconds a process exiting spends relaying what is left
    "JOURNAL_FSYNC": False,  # fsync every record: survives power loss, costs a disk flush per send
    # Broker outages: what they do to a view without the journal, and the mail to ADMINS.
    "CAPTURE_CONNECTION_ERRORS": False,
    "OUTAGE_MAIL_INTERVAL": 3600,  # seconds between two outage mails to ADMINS; 0: never mail
    # Bad input: dead-letter malformed messages (kept) or remove them.
    "REMOVE_MALFORMED_MESSAGES": False,
    "MAX_MESSAGE_BYTES": 1024 * 1024,
    # Exactly once: how long the ids of folded messages are remembered (seconds).
    "LEDGER_RETENTION": 7 * 24 * 3600,
    # Buckets: the zone whose midnights and hours start a bucket; None means TIME_ZONE.
    "TIME_ZONE": None,
    # Spider filtering (see docs/spiders.rst).
    "USER_AGENT_FILTERING": False,
    "EMPTY_USER_AGENT_IS_SPIDER": True,  # a request without a User-Agent header (or a blank one) is a spider's
    "SPIDER_DATASET": True,  # use the crawler-user-agents patterns when that package is installed
    "SPIDER_DATASET_EXCLUDE": None,  # dataset patterns to ignore; None: trackable.spiders.DATASET_EXCLUDE
    "HUMAN_USER_AGENTS": None,  # patterns of people never taken for spiders; None: trackable.spiders.HUMAN_PATTERNS
    "SPIDER_REFRESH_INTERVAL": 60,  # seconds between background reloads of the Spider rows; 0: never
    "USER_AGENT_MAX_LENGTH": 512,  # characters of the User-Agent that are matched
    "SPIDER_CACHE_SIZE": 4096,  # user agents whose verdict is kept per process (LRU)
    # Unique visitors (see docs/uniques.rst and docs/privacy.rst): what identifies a visitor, and how
    # often the salt of its hash changes (old salts are deleted, so visitors are told apart per period).
    "VISITOR_IDENTITY": "request",  # "request" (IP + User-Agent), "session" or "user"
    "VISITOR_SALT_ROTATION": "day",  # "hour", "day", "week" or "month", cut in TRACKABLE_TIME_ZONE
    # Breakdowns (see docs/breakdowns.rst): distinct values of a dimension kept per object per bucket
    # (the rest counted under "(other)"), and the paths the site-wide PageViewMiddleware leaves out.
    "BREAKDOWN_MAX_VALUES": 1000,
    "PAGE_VIEWS_EXCLUDE": None,  # path prefixes not counted; None: STATIC_URL, MEDIA_URL, the admin, /favicon.ico
    # Registry and admin.
    "AUTODISCOVER_MODULE": "trackables",
    "REGISTER_ADMIN": None,  # None: only when DEBUG is on
    # Imports (import_access_log, import_events, convert_tracking_data).
    "IMPORT_RESOLVER": "trackable.accesslog.default_resolver",  # (path, ResolverMatch) -> (obj, field) | None
    "IMPORT_URLS": {},  # URL name -> "app_label.Model.field", used by the default resolver
    "IMPORT_CHUNK_LINES": 50_000,  # lines (or source rows) committed per transaction and ledger row
    # Retention: {"app_label.Model": {"rollup_after_days": 90, "rollup_to": "day", "delete_after_days": 730}}.
    "RETENTION": {},
    # Reading the numbers: JSON API permission, signed tracking links, default window of charts and API.
    "API_PERMISSION": "trackable.api.is_staff",  # dotted path to a callable(request) -> bool
    "LINK_MAX_AGE": 30 * 24 * 3600,  # seconds a signed tracking link stays valid; None: no expiry
    # Replays of one token by one client: at most this many counts per window, per process; 0: no limit.
    "LINK_REPLAY_LIMIT": 10,
    "LINK_REPLAY_WINDOW": 3600,  # seconds
    "DEFAULT_WINDOW_DAYS": 30,  # days shown when a chart, the dashboard or the API is given no window
}

# Old spelling → new name; honoured with a TrackableDeprecationWarning.
DEPRECATED_NAMES = {"USER_AGENT_FILTERTING": "USER_AGENT_FILTERING"}

# Settings of the mechanisms the journal replaced → what to do instead; accepted (ignored) with a warning.
REPLACED_NAMES = {
    "BUFFER_MAX_EVENTS": "the journal's relay now sends many events per message on its own (TRACKABLE_JOURNAL); remove it",
    "BUFFER_MAX_DELAY": "use TRACKABLE_JOURNAL_RELAY_INTERVAL, the seconds between two relays of the journal",
    "SPOOL_DIR": "the journal keeps the events of a broker outage; use TRACKABLE_JOURNAL_DIR to choose its folder",
}


def warn_replaced() -> list[str]:
    """Warn (TrackableDeprecationWarning) about each replaced setting in use; return their names."""
    present = [name for name in REPLACED_NAMES if hasattr(django_settings, PREFIX + name)]
    for name in present:
        warnings.warn(
            f"The setting {PREFIX}{name} is deprecated and ignored: {REPLACED_NAMES[name]}.",
            TrackableDeprecationWarning,
            stacklevel=2,
        )
    return present


class TrackableSettings:
    """Give attribute access to TRACKABLE_* settings, falling back to DEFAULTS."""

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = defaults or DEFAULTS
        self._cached: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name not in self.defaults:
            raise AttributeError(f"Invalid django-trackable setting: '{PREFIX}{name}'")
        value = self._read(name)
        self._cached.add(name)
        setattr(self, name, value)
        return value

    def _read(self, name: str) -> Any:
        full = PREFIX + name
        if hasattr(django_settings, full):
            return getattr(django_settings, full)
        for old, new in DEPRECATED_NAMES.items():
            if new == name and hasattr(django_settings, PREFIX + old):
                warnings.warn(
                    f"The setting {PREFIX}{old} is misspelled and deprecated; rename it to {full}.",
                    TrackableDeprecationWarning,
                    stacklevel=3,
                )
                return getattr(django_settings, PREFIX + old)
        return self.defaults[name]

    @property
    def broker_url(self) -> str:
        """Return the broker URL: TRACKABLE_BROKER_URL, Celery's broker, else filesystem://."""
        for url in (
            self.BROKER_URL,
            getattr(django_settings, "CELERY_BROKER_URL", None),
            getattr(django_settings, "BROKER_URL", None),
        ):
            if url:
                return str(url)
        return "filesystem://"

    @property
    def broker_transport_options(self) -> dict[str, Any]:
        """Return the kombu transport options: Celery's (when the broker is Celery's), then ours on top."""
        options: dict[str, Any] = {}
        if not self.BROKER_URL:
            for name in ("CELERY_BROKER_TRANSPORT_OPTIONS", "BROKER_TRANSPORT_OPTIONS"):
                celery_options = getattr(django_settings, name, None)
                if isinstance(celery_options, dict):
                    options.update(celery_options)
                    break
        if isinstance(self.BROKER_TRANSPORT_OPTIONS, dict):
            options.update(self.BROKER_TRANSPORT_OPTIONS)
        return options

    @property
    def queue_dir(self) -> Path | None:
        """Return the filesystem:// queue folder, or None when it cannot be determined.

        TRACKABLE_QUEUE_DIR, else kombu's own ``data_folder_in`` (or ``data_folder_out``) transport
        option, else ``BASE_DIR / "trackable-queue"``.
        """
        if self.QUEUE_DIR:
            return Path(self.QUEUE_DIR)
        options = self.broker_transport_options
        folder = options.get("data_folder_in") or options.get("data_folder_out")
        if folder:
            return Path(folder)
        base = getattr(django_settings, "BASE_DIR", None)
        return Path(base) / "trackable-queue" if base else None

    @property
    def journal_dir(self) -> Path | None:
        """Return the journal folder, or None when it cannot be determined."""
        if self.JOURNAL_DIR:
            return Path(self.JOURNAL_DIR)
        base = getattr(django_settings, "BASE_DIR", None)
        return Path(base) / "trackable-journal" if base else None

    @property
    def time_zone(self) -> str:
        """Return the name of the zone buckets are cut in."""
        return self.TIME_ZONE or getattr(django_settings, "TIME_ZONE", None) or "UTC"

    @property
    def register_admin(self) -> bool:
        """Return whether data models get a Django admin."""
        if self.REGISTER_ADMIN is None:
            return bool(django_settings.DEBUG)
        return bool(self.REGISTER_ADMIN)

    def reload(self) -> None:
        """Forget every cached value (called when a setting changes)."""
        for name in self._cached:
            self.__dict__.pop(name, None)
        self._cached.clear()


settings = TrackableSettings(DEFAULTS)

# Settings Django derives ours from; a change to one of them drops the cache too.
_WATCHED = {
    "CELERY_BROKER_URL",
    "BROKER_URL",
    "CELERY_BROKER_TRANSPORT_OPTIONS",
    "BROKER_TRANSPORT_OPTIONS",
    "BASE_DIR",
    "TIME_ZONE",
    "DEBUG",
}


@receiver(setting_changed)
def _reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(PREFIX) or setting in _WATCHED:
        settings.reload()
        from trackable import transport

        transport.reset()
        recorded = sys.modules.get("trackable.recorded")
        if recorded is not None and setting == PREFIX + "USER_AGENT_MAX_LENGTH":
            recorded.forget()  # the texts of the user agents it remembers were cut to the old length
        if setting.startswith(PREFIX + "JOURNAL") or setting == "BASE_DIR":
            from trackable import relay

            relay.reset()  # the next send opens a segment in the folder now configured
