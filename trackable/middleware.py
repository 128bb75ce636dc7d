"""Site-wide page counting: PageViewMiddleware counts every successful GET by path into trackable.PageViews.

Add ``"trackable.middleware.PageViewMiddleware"`` to MIDDLEWARE and run migrate: the app registers its
built-in PageViews data model (parent: the Website row 1) and the middleware sends one increment of
``views`` per response, with the path as the breakdown's value. Only GET responses with a 2xx status
count (redirects, errors and the 404s of scanners would fill the table with paths that are not
pages); paths under TRACKABLE_PAGE_VIEWS_EXCLUDE (default: STATIC_URL, MEDIA_URL, the admin and
/favicon.ico) are left out. Spider filtering applies as for any send.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponseBase
from django.urls import NoReverseMatch, reverse

from trackable.conf import settings

__all__ = ["PageViewMiddleware", "MIDDLEWARE_PATH", "excluded_prefixes", "website"]

logger = logging.getLogger("trackable")

MIDDLEWARE_PATH = "trackable.middleware.PageViewMiddleware"


def website():
    """Return the Website row 1 as an unsaved-looking instance built in memory (no query)."""
    from trackable.models import Website

    return Website(pk=1, name="")


def excluded_prefixes() -> tuple[str, ...]:
    """Return the path prefixes not counted: TRACKABLE_PAGE_VIEWS_EXCLUDE, or the static, media and admin URLs."""
    if settings.PAGE_VIEWS_EXCLUDE is not None:
        return tuple(settings.PAGE_VIEWS_EXCLUDE)
    prefixes = ["/favicon.ico"]
    for name in ("STATIC_URL", "MEDIA_URL"):
        url = str(getattr(django_settings, name, None) or "")
        if url.startswith("/") and url != "/":
            prefixes.append(url)
    try:
        prefixes.append(reverse("admin:index"))
    except NoReverseMatch:
        prefixes.append("/admin/")
    return tuple(prefixes)


class PageViewMiddleware:
    """Count every successful GET response by path (one increment of trackable.PageViews.views)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.excluded: tuple[str, ...] | None = None
        self.parent = website()

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.method == "GET" and 200 <= response.status_code < 300:
            if self.excluded is None:
                self.excluded = excluded_prefixes()  # the URLconf is loaded by now
            if not request.path.startswith(self.excluded):
                self.count(request)
        return response

    def count(self, request: HttpRequest) -> None:
        """Send the page view; a failure is logged, never raised into the response."""
        from trackable.messaging import send_increment_message

        try:
            send_increment_message(request, self.parent, "views")
        except Exception:  # noqa: BLE001 - counting must never break the page
            logger.exception("Could not count the page view of %s.", request.path[:200])
