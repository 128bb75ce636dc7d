"""Signed tracking links: everything a click-through or beacon view needs, so it never queries.

A token carries the parent model label, the primary key, the counter field, the redirect target and
(optionally) the data model, signed with SECRET_KEY by ``django.core.signing``. The views trust only
what the signature covers: a tampered token, one signed by another site, or a target passed beside
the token is refused, so the click-through view can never become an open redirect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from trackable.conf import settings
from trackable.exceptions import AmbiguousField, NotRegistered, TrackableError, UnknownField
from trackable.sites import site

__all__ = ["BadLink", "Link", "sign_link", "read_link", "check_target", "track_url", "beacon_url"]

SALT = "trackable.links"


class BadLink(TrackableError, ValueError):
    """A tracking token is tampered with, expired, foreign, or names something not tracked."""


@dataclass(frozen=True)
class Link:
    """The verified content of a token."""

    model: type[models.Model]
    pk: Any
    field: str
    target: str | None
    data_model: type[models.Model] | None

    def instance(self) -> models.Model:
        """Return an unsaved stand-in of the parent carrying its pk: enough to send a message, no query."""
        return self.model(pk=self.pk)


def sign_link(
    obj: models.Model, field: str, target: str | None = None, *, data_model: type[models.Model] | None = None
) -> str:
    """Return a token counting `field` of `obj` and naming `target` (default: obj.get_absolute_url())."""
    if target is None and hasattr(obj, "get_absolute_url"):
        target = obj.get_absolute_url()
    if target is not None:
        check_target(str(target))
    return _token(obj, field, None if target is None else str(target), data_model)


def _token(obj: models.Model, field: str, target: str | None, data_model: type[models.Model] | None) -> str:
    route = site.route(type(obj), field, data_model)  # raises on a field that is not counted
    if obj.pk is None:
        raise ValueError(f"Cannot link to an unsaved {type(obj).__name__}: save it first so it has a primary key.")
    pk = obj.pk if isinstance(obj.pk, int) else str(obj.pk)
    payload = [route.parent_label, pk, field, target]
    if data_model is not None:
        payload.append(route.data_label)
    return signing.dumps(payload, salt=SALT, compress=True)


def read_link(token: str) -> Link:
    """Return the Link in `token`, or raise BadLink saying why it is refused."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.LINK_MAX_AGE)
    except signing.SignatureExpired as err:
        raise BadLink("This tracking link has expired; reload the page that showed it.") from err
    except signing.BadSignature as err:
        raise BadLink("This tracking link is not signed by this site.") from err
    if not isinstance(payload, list) or len(payload) not in (4, 5):
        raise BadLink("This tracking link does not hold a tracked object.")
    parent_label, raw_pk, field, target = payload[:4]
    data_label = payload[4] if len(payload) == 5 else None
    try:
        model = apps.get_model(parent_label)
        data_model = apps.get_model(data_label) if data_label else None
        site.route(model, field, data_model)
        pk = model._meta.pk.to_python(raw_pk)
    except (LookupError, ValueError, TypeError, ValidationError, NotRegistered, UnknownField, AmbiguousField) as err:
        raise BadLink(f"This tracking link names nothing tracked here: {err}") from err
    if target is not None:
        check_target(target)
    return Link(model, pk, field, target, data_model)


def check_target(target: str) -> None:
    """Raise BadLink unless `target` is an http(s) URL or a path of this site."""
    parts = urlsplit(target)
    if parts.scheme not in ("", "http", "https") or (not parts.scheme and not target.startswith("/")):
        raise BadLink(f"Tracking links redirect to http(s) URLs or site paths, not {target[:80]!r}.")
    if target.startswith("//") or "\\" in target:
        raise BadLink(f"Tracking links need an explicit scheme for another host, not {target[:80]!r}.")


def track_url(obj: models.Model, field: str, target: str | None = None, **kwargs: Any) -> str:
    """Return the URL of the click-through view for `obj` (POST to it to count and redirect)."""
    return reverse("trackable:track", args=[sign_link(obj, field, target, **kwargs)])


def beacon_url(obj: models.Model, field: str, *, data_model: type[models.Model] | None = None) -> str:
    """Return the URL that counts `field` of `obj` when POSTed to (navigator.sendBeacon, <a ping>)."""
    return reverse("trackable:beacon", args=[_token(obj, field, None, data_model)])
