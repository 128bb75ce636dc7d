"""The staff dashboard: totals and top objects of every tracked model, and the top values of every breakdown."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from trackable import query
from trackable.buckets import DAY
from trackable.conf import settings
from trackable.fields import dimension_fields, is_breakdown, unique_fields
from trackable.models import TrackableTimeSeriesData, counter_fields, model_field
from trackable.sites import site
from trackable.status import collect_status

__all__ = ["WINDOWS", "dashboard_view", "Section", "Counter", "Breakdown", "build_breakdowns"]

WINDOWS = (1, 7, 30, 90, 365)  # the windows offered as links, in days (any other ?days= up to 3660 works)


@dataclass
class Counter:
    """One counter field of one parent model: its total in the window and its top objects."""

    field: str
    label: str
    total: int
    top: list[tuple[str, str | None, int]] = dataclasses.field(default_factory=list)  # (name, link, total)


@dataclass
class Section:
    """The counters of one data model of one parent model."""

    parent: str
    data_model: str
    counters: list[Counter]


def _link(obj: models.Model) -> str | None:
    opts = obj._meta
    if admin.site.is_registered(type(obj)):
        try:
            return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        except NoReverseMatch:
            pass
    return obj.get_absolute_url() if hasattr(obj, "get_absolute_url") else None


def build_sections(start: Any, end: Any, n: int = 10) -> list[Section]:
    """Return the dashboard's sections: one query for the totals of each data model, one per top list."""
    sections = []
    for dm in site.data_models():
        if not issubclass(dm, TrackableTimeSeriesData) or is_breakdown(dm):
            continue
        fields = counter_fields(dm)
        for parent in site.parents_of(dm):
            sums = query.model_totals(parent, fields, start, end, data_model=dm)
            counters = []
            for name in fields:
                top = query.top_objects(parent, name, start, end, n=n, data_model=dm)
                label = str(model_field(dm, name).verbose_name)
                ranked = [(str(o), _link(o), o.trackable_total) for o in top]  # type: ignore[attr-defined]  # annotated
                counters.append(Counter(name, label, sums[name], ranked))
            counters += [_unique_counter(parent, dm, f, start, end, n) for f in unique_fields(dm)]
            sections.append(Section(str(parent._meta.verbose_name_plural), str(dm._meta.verbose_name), counters))
    return sections


@dataclass
class Breakdown:
    """The top values of one dimension of one breakdown over every object of a parent model."""

    title: str
    chart: Any  # the bars and their table (SafeString)


def build_breakdowns(start: Any, end: Any, n: int = 10) -> list[Breakdown]:
    """Return the top `n` values of each dimension of each breakdown (paths, referrers …), one query each."""
    from trackable import breakdowns, charts

    found = []
    for dm in site.data_models():
        spider = set(getattr(dm, "spider_fields", {}).values())
        for parent in site.parents_of(dm):
            for dim in dimension_fields(dm):
                for name in [c for c in counter_fields(dm) if c not in spider]:
                    entries = breakdowns.top_values(parent, dim.name, name, start, end, n, data_model=dm)
                    title = (
                        f"{str(model_field(dm, name).verbose_name).capitalize()} of "
                        f"{parent._meta.verbose_name_plural} by {dim.verbose_name}"
                    )
                    found.append(Breakdown(title, charts.render_breakdown(entries, title, str(dim.verbose_name).capitalize())))
    return found


def _unique_counter(parent: Any, dm: Any, f: Any, start: Any, end: Any, n: int) -> Counter:
    """Return a UniqueVisitors field as a dashboard counter: distinct visitors of all parents, and the top ones."""
    from trackable import sketches, uniques

    people = uniques.queryset_uniques(parent._default_manager.all(), f.name, start, end, data_model=dm)
    top = uniques.top_uniques(parent, f.name, start, end, n=n, data_model=dm)
    objects = parent._default_manager.in_bulk([e.object_id for e in top])
    ranked = [(str(objects[e.object_id]), _link(objects[e.object_id]), e.value.estimate) for e in top if e.object_id in objects]
    label = f"{f.verbose_name} (unique, ±{sketches.relative_error(f.lg_k):.1%})"
    return Counter(f.name, label, people.estimate, ranked)


@staff_member_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Show totals and the top 10 objects of every counter over the last ?days= days (staff only)."""
    raw = request.GET.get("days", str(settings.DEFAULT_WINDOW_DAYS))
    if not re.fullmatch(r"[0-9]{1,4}", raw, re.ASCII) or not 1 <= int(raw) <= 3660:  # isdigit() takes '²'
        return HttpResponseBadRequest("days must be a whole number of days from 1 to 3660.", content_type="text/plain")
    days = int(raw)
    start, end = query.last_buckets(days, DAY)
    context = {
        **admin.site.each_context(request),
        "title": _("Tracking dashboard"),
        "days": days,
        "windows": WINDOWS,
        "start": start,
        "end": end,
        "time_zone": settings.time_zone,
        "sections": build_sections(start, end),
        "breakdowns": build_breakdowns(start, end),
        "status": collect_status(),  # the facts of manage.py trackable_status
    }
    return render(request, "trackable/dashboard.html", context)
