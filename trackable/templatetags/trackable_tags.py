"""Template tags: tracked links and beacons, counts and charts of an object.

    {% load trackable_tags %}
    {% tracked_link article "click_throughs" "https://example.com/" text="Read on" %}
    {% trackable_beacon_script %}        (once per page, sends the beacons of tracked links)
    <form method="post" action="{% tracked_url article "click_throughs" %}">...</form>
    {% trackable_count article "impressions" days=7 %}
    {% trackable_chart article "impressions" days=30 %}
    {% trackable_breakdown article "referrer" days=30 n=10 %}   (horizontal bars and a table)
"""
from __future__ import annotations

from typing import Any

from django import template
from django.db import models
from django.forms.utils import flatatt
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

from trackable import charts, links, query
from trackable.buckets import DAY

__all__ = [
    "tracked_url",
    "beacon_url",
    "tracked_link",
    "trackable_beacon_script",
    "trackable_count",
    "trackable_chart",
    "trackable_breakdown",
]

register = template.Library()


@register.simple_tag
def tracked_url(obj: models.Model, field: str, target: str | None = None) -> str:
    """Return the click-through URL of `obj` (POST to it: it counts `field` and redirects to `target`)."""
    return links.track_url(obj, field, target)


@register.simple_tag
def beacon_url(obj: models.Model, field: str) -> str:
    """Return the beacon URL that counts `field` of `obj` when POSTed to."""
    return links.beacon_url(obj, field)


@register.simple_tag
def tracked_link(
    obj: models.Model, field: str, target: str | None = None, text: str | None = None, ping: bool = False, **attrs: Any
) -> SafeString:
    """Render <a href="target"> that counts `field` of `obj` when clicked (a beacon, never the GET)."""
    href = target if target is not None else obj.get_absolute_url()  # type: ignore[attr-defined]  # required without a target
    links.check_target(str(href))  # refuses javascript: and scheme-relative targets
    attribute = "ping" if ping else "data-trackable-beacon"
    # class_="button" → class="button", aria_label="…" → aria-label="…" (values escaped by flatatt)
    extra = flatatt({name.rstrip("_").replace("_", "-"): value for name, value in attrs.items()})
    return format_html(
        '<a href="{}" {}="{}"{}>{}</a>',
        href,
        attribute,
        links.beacon_url(obj, field),
        extra,
        text if text is not None else str(obj),
    )


@register.simple_tag
def trackable_beacon_script() -> SafeString:
    """Render the <script> that sends the beacon of tracked links on click (navigator.sendBeacon)."""
    return format_html('<script src="{}" defer></script>', static("trackable/beacon.js"))


@register.simple_tag
def trackable_count(obj: models.Model, field: str, days: int | None = None) -> int:
    """Return the total of `field` for `obj`: all time, or over the last `days` days (today included)."""
    if days is None:
        return query.total(obj, field)
    start, end = query.last_buckets(int(days), DAY)
    return query.total(obj, field, start, end)


@register.simple_tag
def trackable_chart(
    obj: models.Model, field: str, days: int | None = None, granularity: str | None = None, title: str | None = None
) -> SafeString:
    """Render the chart (inline SVG and table) of `field` for `obj` over the last `days` days."""
    return charts.chart_of(obj, field, days=days, granularity=granularity, title=title)



@register.simple_tag
def trackable_breakdown(
    target: Any, dimension: str, field: str | None = None, days: int | None = None, n: int = 10, title: str | None = None
) -> SafeString:
    """Render the top `n` values of `dimension` (bars and a table) for an object, a queryset or a model."""
    return charts.breakdown_chart_of(target, dimension, field, days=days, n=int(n), title=title)
