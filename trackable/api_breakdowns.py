"""JSON (and CSV) endpoints for breakdowns: the top values of a dimension, and a series per value.

``api/<parent>/breakdown/`` (every object of the parent model), ``api/<parent>/<pk>/breakdown/`` (one
object) and ``api/<parent>/<pk>/breakdown/series/``; the permission and the parameters' rules are
those of trackable.api.
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from trackable import breakdowns
from trackable.api import (
    ApiError,
    _check_points,
    _csv,
    _parent,
    _parent_model,
    _pk_json,
    _zone,
    api_view,
    parse_window,
    whole_number,
)
from trackable.messages import MAX_DIMENSION_CHARS
from trackable.models import time_series

__all__ = ["breakdown_view", "object_breakdown_view", "breakdown_series_view"]

MAX_VALUES = 20  # values one series request may name


def _dimension(request: HttpRequest) -> str:
    dimension = request.GET.get("dimension")
    if not dimension:
        raise ApiError("Name the dimension to break down by with ?dimension=, e.g. ?dimension=referrer.")
    return dimension


def _answer(request: HttpRequest, target: Any, name: str, head: dict[str, Any]) -> HttpResponse:
    dimension, zone = _dimension(request), _zone(request)
    field = request.GET.get("field") or None
    start, end = parse_window(request, zone)
    n = whole_number(request.GET.get("n", "10"), "n", 1, 1000)
    entries = breakdowns.top_values(target, dimension, field, start, end, n)
    field = breakdowns.breakdown_dimension(breakdowns.target_model(target), dimension, field)[2]
    if request.GET.get("format") == "csv":
        rows = [[e.value, e.total, round(e.share, 6)] for e in entries]
        return _csv(f"{name}-{dimension}", [dimension, field, "share"], rows)
    values = [
        {"value": e.value, "label": breakdowns.label(e.value), "total": e.total, "share": round(e.share, 6)} for e in entries
    ]
    return JsonResponse(
        {
            **head,
            "dimension": dimension,
            "field": field,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "total": sum(e.total for e in entries),
            "values": values,
        }
    )


@api_view
def breakdown_view(request: HttpRequest, parent: str) -> HttpResponse:
    """Answer the top values of a dimension over every object of a parent model: ?dimension=&field=&start=&end=&n=."""
    model = _parent_model(parent)
    return _answer(request, model, f"{parent}-breakdown", {"parent": parent.lower()})


@api_view
def object_breakdown_view(request: HttpRequest, parent: str, pk: str) -> HttpResponse:
    """Answer the top values of a dimension for one object: ?dimension=&field=&start=&end=&n=&format=csv."""
    obj = _parent(parent, pk)
    return _answer(request, obj, f"{parent}-{pk}-breakdown", {"parent": parent.lower(), "pk": _pk_json(obj.pk)})


@api_view
def breakdown_series_view(request: HttpRequest, parent: str, pk: str) -> HttpResponse:
    """Answer a series per value of a dimension for one object: ?dimension=&value=…&value=…&granularity=&tz=."""
    obj, dimension, zone = _parent(parent, pk), _dimension(request), _zone(request)
    field = request.GET.get("field") or None
    start, end = parse_window(request, zone)
    values = request.GET.getlist("value") or None
    if values is not None:
        if len(values) > MAX_VALUES:
            raise ApiError(f"Ask for at most {MAX_VALUES} values at once, not {len(values)}.")
        if any(len(v) > MAX_DIMENSION_CHARS or "\x00" in v for v in values):
            raise ApiError(f"A value is longer than {MAX_DIMENSION_CHARS} characters or holds a NUL character.")
    granularity = request.GET.get("granularity") or None
    dm = breakdowns.breakdown_dimension(type(obj), dimension, field)[0]
    _check_points(start, end, granularity or time_series(dm).granularity)
    series = breakdowns.value_series(obj, dimension, field, start, end, values=values, granularity=granularity,
                                     tz=request.GET.get("tz") or None)
    if request.GET.get("format") == "csv":
        rows = [[value, p.start.isoformat(), p.value] for value, points in series.items() for p in points]
        return _csv(f"{parent}-{pk}-{dimension}-series", [dimension, "bucket", "total"], rows)
    return JsonResponse(
        {
            "parent": parent.lower(),
            "pk": _pk_json(obj.pk),
            "dimension": dimension,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "tz": zone.key,
            "series": {value: [[p.start.isoformat(), p.value] for p in points] for value, points in series.items()},
        }
    )
