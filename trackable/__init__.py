"""Out-of-band, exactly-once tracking of per-object counters for Django."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.5.0"

__all__ = [
    "__version__",
    "site",
    "autodiscover",
    "TrackableData",
    "TrackableTimeSeriesData",
    "UniqueVisitors",
    "Dimension",
    "AlreadyRegistered",
    "NotRegistered",
    "MINUTE",
    "HOUR",
    "DAY",
    "WEEK",
    "MONTH",
    "YEAR",
]

from trackable.buckets import DAY, HOUR, MINUTE, MONTH, WEEK, YEAR  # noqa: E402
from trackable.exceptions import AlreadyRegistered, NotRegistered  # noqa: E402
from trackable.sites import site  # noqa: E402

# The abstract models can only be defined once Django's app registry is ready, so they are
# imported on first access (PEP 562) rather than here: `import trackable` stays safe in settings.
# Type checkers see them as plain imports, so `class MyData(trackable.TrackableTimeSeriesData)` checks.
if TYPE_CHECKING:
    from trackable.fields import Dimension, UniqueVisitors
    from trackable.models import TrackableData, TrackableTimeSeriesData

_LAZY_MODELS = {"TrackableData", "TrackableTimeSeriesData"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODELS:
        from trackable import models

        return getattr(models, name)
    if name in ("UniqueVisitors", "Dimension"):
        from trackable import fields

        return getattr(fields, name)
    raise AttributeError(f"module 'trackable' has no attribute {name!r}")


def autodiscover() -> None:
    """Import the `trackables` module of every installed app, like admin.autodiscover()."""
    from django.utils.module_loading import autodiscover_modules

    from trackable.conf import settings

    autodiscover_modules(settings.AUTODISCOVER_MODULE, register_to=site)
