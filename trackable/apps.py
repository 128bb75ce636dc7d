"""App configs: TrackableConfig autodiscovers `trackables` modules; SimpleTrackableConfig does not."""
from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class SimpleTrackableConfig(AppConfig):
    """The django-trackable app without autodiscovery."""

    name = "trackable"
    verbose_name = _("Tracking")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from trackable import checks as trackable_checks
        from trackable.conf import warn_replaced

        warn_replaced()  # settings of the buffer and the spool, which the journal replaced

        checks.register(trackable_checks.check_settings, "trackable")
        checks.register(trackable_checks.check_registry, "trackable", checks.Tags.models)
        checks.register(trackable_checks.check_spiders, "trackable")
        checks.register(trackable_checks.check_operations, "trackable", checks.Tags.models)
        checks.register(trackable_checks.check_uniques, "trackable", checks.Tags.models)
        register_page_views()


def register_page_views() -> None:
    """Register the built-in PageViews data model when PageViewMiddleware is installed."""
    from django.conf import settings as django_settings

    from trackable.middleware import MIDDLEWARE_PATH
    from trackable.models import PageViews, Website
    from trackable.sites import site

    if MIDDLEWARE_PATH in (getattr(django_settings, "MIDDLEWARE", None) or ()) and not site.is_registered(Website, PageViews):
        site.register(Website, PageViews)


class TrackableConfig(SimpleTrackableConfig):
    """The django-trackable app, importing each installed app's `trackables` module at startup."""

    default = True

    def ready(self) -> None:
        super().ready()
        from trackable import autodiscover

        autodiscover()
