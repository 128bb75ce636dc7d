"""Read-only JSON (and CSV) endpoints for series, totals and top-N, permission-checked.

Who may read is decided by TRACKABLE_API_PERMISSION, a dotted path to a callable taking the request
and returning a bool: ``trackable.api.is_staff`` (the default), ``trackable.api.is_authenticated``,
``trackable.api.allow_any`` or your own.
"""
from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Callable
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET

from trackable import query, uniques
from trackable.conf import settings
from trackable.models import time_series
from trackable.pklimits import pk_limits
from trackable.sites import site

__all__ = [
    "is_staff",
    "is_authenticated",
    "allow_any",
    "ApiError",
    "api_view",
    "parse_window",
    "series_view",
    "totals_view",
    "top_view",
    "status_view",
]


def is_staff(request: HttpRequest) -> bool:
    """Allow active staff users (the default TRACKABLE_API_PERMISSION)."""
    user = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_staff)


def is_authenticated(request: HttpRequest) -> bool:
    """Allow any signed-in user."""
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated)


def allow_any(request: HttpRequest) -> bool:
    """Allow everybody: the counts are public."""
    return True


class ApiError(Exception):
    """A request the API answers with an error status and a sentence."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _permission() -> Callable[[HttpRequest], bool]:
    path = settings.API_PERMISSION
    try:
        return import_string(path) if isinstance(path, str) else path
    except ImportError as err:
        raise ImproperlyConfigured(
            f"TRACKABLE_API_PERMISSION is {path!r}, which cannot be imported; name a callable(request) -> bool "
            "such as 'trackable.api.is_staff'."
        ) from err


def api_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Check the permission, then answer ApiError and query.QueryError as JSON errors."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _permission()(request):
            return JsonResponse({"error": "You may not read tracking data; sign in as a permitted user."}, status=403)
        try:
            return view(request, *args, **kwargs)
        except ApiError as err:
            return JsonResponse({"error": str(err)}, status=err.status)
        except query.QueryError as err:
            return JsonResponse({"error": str(err)}, status=400)

    return require_GET(wrapper)


def _parent_model(label: str) -> type[models.Model]:
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        model = None
    if model is None or not site.is_registered(model):
        raise ApiError(f"{label!r} is not a tracked model; use an 'app_label.model' label of a registered parent.", 404)
    return model


def _parent(label: str, raw_pk: str) -> models.Model:
    model = _parent_model(label)
    try:
        pk = model._meta.pk.to_python(raw_pk)
    except (ValidationError, ValueError, TypeError) as err:
        raise ApiError(f"{raw_pk[:80]!r} is not a primary key of {model._meta.label_lower}.") from err
    problem = pk_limits(model).problem(pk, printable=True)
    if problem:
        raise ApiError(f"{raw_pk[:80]!r} is not a primary key of {model._meta.label_lower}: {problem}.")
    return model(pk=pk)  # the counts are keyed by pk: no need to load the object


# The moments a window may start or end at: a year inside datetime's range on each side, so that no
# bucket arithmetic or zone conversion can overflow.
EARLIEST = datetime(2, 1, 1, tzinfo=dt_timezone.utc)
LATEST = datetime(9998, 12, 31, tzinfo=dt_timezone.utc)
# Seconds of one bucket, to bound how many points a series may have.
BUCKET_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 28 * 86400, "year": 365 * 86400}
MAX_POINTS = 100_000


def _moment(raw: str, name: str, zone: Any) -> datetime:
    example = "e.g. 2026-05-01 or 2026-05-01T12:00Z"
    try:
        parsed = parse_datetime(raw)
        if parsed is None:
            day = parse_date(raw)
            if day is None:
                raise ApiError(f"{name}={raw[:80]!r} is not an ISO 8601 date or datetime, {example}.")
            parsed = datetime.combine(day, time())
        parsed = parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=zone)
        in_range = EARLIEST <= parsed <= LATEST
    except (ValueError, OverflowError) as err:  # 2026-02-30, 25:00, a zone pushing it past year 1 or 9999
        raise ApiError(f"{name}={raw[:80]!r} is not a valid date or time ({err}); give one like {example[5:]}.") from err
    if not in_range:
        raise ApiError(f"{name}={raw[:80]!r} is outside the years 0002 to 9998 the API can count; give a nearer date.")
    return parsed


def whole_number(raw: str, name: str, low: int, high: int) -> int:
    """Return `raw` as an int from `low` to `high` (ASCII digits only: no '²', no '٣'), or raise ApiError."""
    if not re.fullmatch(r"[0-9]{1,9}", raw, re.ASCII) or not low <= int(raw) <= high:
        raise ApiError(f"{name}={raw[:20]!r} is not a whole number from {low} to {high}; ask for e.g. ?{name}={low + 9}.")
    return int(raw)


def parse_window(request: HttpRequest, zone: Any) -> tuple[datetime, datetime]:
    """Return (start, end) from ?start= and ?end= (ISO 8601), defaulting to the last DEFAULT_WINDOW_DAYS days."""
    end = _moment(request.GET["end"], "end", zone) if request.GET.get("end") else timezone.now()
    if request.GET.get("start"):
        start = _moment(request.GET["start"], "start", zone)
    else:
        start = end - timedelta(days=settings.DEFAULT_WINDOW_DAYS)
    return start, end


def _zone(request: HttpRequest) -> Any:
    return query.resolve_zone(request.GET.get("tz") or None)


def _field(request: HttpRequest) -> str:
    field = request.GET.get("field")
    if not field:
        raise ApiError("Name the counter field to read with ?field=.")
    return field


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """Return `value` safe for a spreadsheet: a string starting like a formula gets a leading apostrophe."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in header])
    writer.writerows([csv_cell(c) for c in row] for row in rows)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name, flags=re.ASCII)[:150]  # no quote, semicolon or newline
    response["Content-Disposition"] = f'attachment; filename="{safe}.csv"'
    return response


def _check_points(start: datetime, end: datetime, granularity: str) -> None:
    points = (end - start).total_seconds() / BUCKET_SECONDS.get(granularity, 60)
    if points > MAX_POINTS:
        raise ApiError(
            f"This window holds about {int(points):,} {granularity} buckets, more than the {MAX_POINTS:,} a series may "
            "have; ask for a shorter window or a coarser ?granularity=."
        )


def _pk_json(pk: Any) -> Any:
    return pk if isinstance(pk, int) else str(pk)


@api_view
def series_view(request: HttpRequest, parent: str, pk: str) -> HttpResponse:
    """Answer the series of one field of one object: ?field=&start=&end=&granularity=&tz=&format=csv."""
    obj, field, zone = _parent(parent, pk), _field(request), _zone(request)
    start, end = parse_window(request, zone)
    granularity = request.GET.get("granularity") or None
    tz = request.GET.get("tz") or None
    if uniques.is_unique_field(type(obj), field):
        _check_points(start, end, granularity or time_series(uniques.unique_field(type(obj), field)[0]).granularity)
        return _unique_series(request, obj, parent, pk, field, (start, end), granularity, zone)
    _check_points(start, end, granularity or time_series(query.data_model_for(type(obj), field)).granularity)
    points = query.series(obj, field, start, end, granularity=granularity, tz=tz)
    granularity = granularity or time_series(query.data_model_for(type(obj), field)).granularity
    if request.GET.get("format") == "csv":
        return _csv(f"{parent}-{pk}-{field}", ["bucket", field], [[p.start.isoformat(), p.value] for p in points])
    return JsonResponse(
        {
            "parent": parent.lower(),
            "pk": _pk_json(obj.pk),
            "field": field,
            "granularity": granularity,
            "tz": zone.key,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "total": sum(p.value for p in points),
            "points": [[p.start.isoformat(), p.value] for p in points],
        }
    )


@api_view
def totals_view(request: HttpRequest, parent: str, pk: str) -> HttpResponse:
    """Answer the totals of one or more fields of one object: ?fields=a,b&start=&end= (all time without both)."""
    obj = _parent(parent, pk)
    fields = [f for f in (request.GET.get("fields") or request.GET.get("field") or "").split(",") if f]
    if not fields:
        raise ApiError("Name the counter fields to total with ?fields=a,b.")
    zone = _zone(request)
    windowed = request.GET.get("start") or request.GET.get("end")
    start, end = parse_window(request, zone) if windowed else (None, None)
    unique = [f for f in fields if uniques.is_unique_field(type(obj), f)]
    counted = [f for f in fields if f not in unique]
    sums = query.totals(obj, counted, start, end) if counted else {}
    people = {f: uniques.uniques(obj, f, start, end) for f in unique}
    if request.GET.get("format") == "csv":
        rows = [[f, n, n, n] for f, n in sums.items()] + [[f, *e] for f, e in people.items()]
        return _csv(f"{parent}-{pk}-totals", ["field", "total", "lower", "upper"], rows)
    answer = {
        "parent": parent.lower(),
        "pk": _pk_json(obj.pk),
        "start": start and start.isoformat(),
        "end": end and end.isoformat(),
        "totals": sums,
    }
    if unique:
        answer.update(_unique_notes(start, end, {f: e._asdict() for f, e in people.items()}))
    return JsonResponse(answer)


@api_view
def top_view(request: HttpRequest, parent: str) -> HttpResponse:
    """Answer the top-N objects of a parent model by a field: ?field=&start=&end=&n=10&format=csv."""
    model, field, zone = _parent_model(parent), _field(request), _zone(request)
    start, end = parse_window(request, zone)
    n = whole_number(request.GET.get("n", "10"), "n", 1, 1000)
    if uniques.is_unique_field(model, field):
        people = uniques.top_uniques(model, field, start, end, n=n)
        if request.GET.get("format") == "csv":
            return _csv(f"{parent}-top-{field}", ["pk", field, "lower", "upper"], [[e.object_id, *e.value] for e in people])
        top = [
            {"pk": _pk_json(e.object_id), "total": e.value.estimate, "lower": e.value.lower, "upper": e.value.upper}
            for e in people
        ]
        return JsonResponse(
            {"parent": parent.lower(), "field": field, "start": start.isoformat(), "end": end.isoformat(), "top": top,
             **_unique_notes(start, end)}
        )
    ranked = query.top(model, field, start, end, n=n)
    if request.GET.get("format") == "csv":
        return _csv(f"{parent}-top-{field}", ["pk", field], [[e.object_id, e.total] for e in ranked])
    return JsonResponse(
        {
            "parent": parent.lower(),
            "field": field,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "top": [{"pk": _pk_json(e.object_id), "total": e.total} for e in ranked],
        }
    )


def _unique_notes(start: datetime | None, end: datetime | None, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return what an answer about unique visitors says besides the numbers: bounds and salt limits."""
    notes: dict[str, Any] = {} if values is None else {"uniques": values}
    notes["confidence"] = 0.95
    within = uniques.deduplicated_within(start, end)
    notes["deduplicated_within"] = within
    if within:
        notes["note"] = (
            f"Visitors are told apart within {within} only (the salt of their hash changes then): "
            f"a visitor seen in several of those periods of this window counts once in each."
        )
    return notes


def _unique_series(
    request: HttpRequest, obj: Any, parent: str, pk: str, field: str, window: tuple, granularity: Any, zone: Any
) -> HttpResponse:
    start, end = window
    points = uniques.uniques_series(obj, field, start, end, granularity=granularity, tz=request.GET.get("tz") or None)
    rows = [[p.start.isoformat(), *p.value] for p in points]
    if request.GET.get("format") == "csv":
        return _csv(f"{parent}-{pk}-{field}", ["bucket", field, "lower", "upper"], rows)
    whole = uniques.uniques(obj, field, start, end)
    return JsonResponse(
        {
            "parent": parent.lower(),
            "pk": _pk_json(obj.pk),
            "field": field,
            "granularity": granularity or time_series(uniques.unique_field(type(obj), field)[0]).granularity,
            "tz": zone.key,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "total": whole.estimate,
            "lower": whole.lower,
            "upper": whole.upper,
            "points": rows,
            **_unique_notes(start, end),
        }
    )


@api_view
def status_view(request: HttpRequest) -> HttpResponse:
    """Answer how fresh the numbers are: when the last fold committed and how often folds run."""
    last = query.last_folded()
    age = None if last is None else round((timezone.now() - last).total_seconds(), 3)
    return JsonResponse(
        {
            "last_folded": last and last.isoformat(),
            "seconds_since_last_fold": age,
            "collection_period": settings.COLLECTION_PERIOD,
        }
    )
