"""Abstract bases for data models, and the concrete Spider and ledger models of the app."""
from __future__ import annotations

from functools import cache
from typing import cast

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models.signals import class_prepared
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from trackable.buckets import DAY
from trackable.fields import Dimension
from trackable.sites import COUNTER_TYPES

__all__ = [
    "TrackableData",
    "TrackableTimeSeriesData",
    "Spider",
    "FoldedMessage",
    "FoldRun",
    "ImportedChunk",
    "VisitorSalt",
    "Website",
    "PageViews",
    "counter_fields",
]

# Fields of the abstract bases; every other integer field of a data model is a counter.
RESERVED_FIELDS = frozenset({"id", "content_type", "object_id", "collected_during"})


class TrackableData(models.Model):
    """An abstract base class model that holds the counters of one parent object.

    The parent is any model instance (a generic relation). `object_id` is a big integer; a data model
    whose parents have UUID or string primary keys redeclares it, e.g. ``object_id = models.UUIDField()``.
    """

    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, related_name="+", verbose_name=_("parent type")
    )
    object_id = models.BigIntegerField(_("parent id"))
    parent = GenericForeignKey("content_type", "object_id")

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(fields=["content_type", "object_id"], name="%(app_label)s_%(class)s_parent"),
        ]

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} of {self.content_type_id}:{self.object_id}"


class TrackableTimeSeriesData(TrackableData):
    """An abstract base class model that holds the counters of one parent object in one time bucket.

    `collected_during` is the aware UTC start of the bucket; `granularity` (a class attribute: "minute",
    "hour", "day", "week" or "month") sets the bucket length, "day" by default.
    """

    collected_during = models.DateTimeField(_("collected during"), db_index=True)

    granularity = DAY

    class Meta(TrackableData.Meta):
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "collected_during"], name="%(app_label)s_%(class)s_bucket"
            ),
        ]
        ordering = ["-collected_during"]
        get_latest_by = "collected_during"

    def __str__(self) -> str:
        # The site's clock, as the admin shows the field: one time for one bucket on one page.
        moment = self.collected_during
        moment = timezone.localtime(moment) if moment is not None and timezone.is_aware(moment) else moment
        return f"{super().__str__()} during {moment:%Y-%m-%d %H:%M %Z}".rstrip()


BUCKET_KEY = ("content_type", "object_id", "collected_during")


@receiver(class_prepared, dispatch_uid="trackable.models.key_breakdowns")
def _key_breakdowns(sender: type[models.Model], **kwargs: object) -> None:
    """Make a breakdown's dimensions part of its bucket key: one row per object, bucket and values.

    The abstract base declares the unique constraint on (content_type, object_id, collected_during);
    a concrete data model with Dimension fields gets the same constraint (same name) with its dimension
    columns appended, so the fold's upsert has a key to conflict on and migrations create it.
    """
    if sender._meta.abstract or not issubclass(sender, TrackableTimeSeriesData):
        return
    dimensions = [f.name for f in sender._meta.local_fields if isinstance(f, Dimension)]
    if not dimensions:
        return
    sender._meta.constraints = [
        models.UniqueConstraint(fields=[*BUCKET_KEY, *dimensions], name=c.name)
        if isinstance(c, models.UniqueConstraint) and tuple(c.fields) == BUCKET_KEY
        else c
        for c in sender._meta.constraints
    ]


@cache
def counter_fields(model: type[models.Model]) -> tuple[str, ...]:
    """Return the names of the counter (integer) fields of a data model."""
    return tuple(
        f.attname
        for f in model._meta.concrete_fields
        if f.name not in RESERVED_FIELDS
        and not f.primary_key
        and not f.is_relation
        and f.get_internal_type() in COUNTER_TYPES
    )


def model_field(model: type[models.Model], name: str) -> models.Field:
    """Return the concrete field `name` of `model` (``get_field`` may also return a reverse relation)."""
    return cast(models.Field, model._meta.get_field(name))


def time_series(dm: type[models.Model]) -> type[TrackableTimeSeriesData]:
    """Return `dm` typed as the time series data model it is (its `granularity` is then known)."""
    return cast("type[TrackableTimeSeriesData]", dm)


class SpiderManager(models.Manager["Spider"]):
    """Find spiders by pattern, so `loaddata trackable_spiders` updates rows instead of duplicating them."""

    def get_by_natural_key(self, pattern: str) -> Spider:
        return self.get(pattern=pattern)


class Spider(models.Model):
    """A user-agent pattern whose requests are not counted when TRACKABLE_USER_AGENT_FILTERING is on."""

    pattern = models.CharField(
        _("pattern"),
        max_length=255,
        unique=True,
        help_text=_("A regular expression searched in the User-Agent header, case-insensitively."),
    )
    description = models.CharField(_("description"), max_length=255, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    objects = SpiderManager()

    class Meta:
        verbose_name = _("spider")
        verbose_name_plural = _("spiders")
        ordering = ["pattern"]

    def __str__(self) -> str:
        return self.pattern

    def clean(self) -> None:
        """Refuse a pattern RE2 cannot compile or that would break the joined matcher (also from the admin)."""
        from django.core.exceptions import ValidationError

        from trackable.spiders import check_pattern

        try:
            check_pattern(self.pattern)
        except ValueError as err:
            raise ValidationError({"pattern": str(err)}) from err

    def natural_key(self) -> tuple[str]:
        return (self.pattern,)


class FoldedMessage(models.Model):
    """The ledger: ids of messages whose increments were committed, so a redelivery is not counted twice."""

    id = models.CharField(_("message id"), max_length=32, primary_key=True)
    folded_at = models.DateTimeField(_("folded at"), db_index=True)

    class Meta:
        verbose_name = _("folded message")
        verbose_name_plural = _("folded messages")

    def __str__(self) -> str:
        return self.id


class FoldRun(models.Model):
    """One finished run of process_messages: what it folded and how fast (read by trackable_status)."""

    finished_at = models.DateTimeField(_("finished at"), db_index=True)
    seconds = models.FloatField(_("seconds"))
    messages = models.PositiveIntegerField(_("messages"), default=0)
    events = models.PositiveIntegerField(_("events"), default=0)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates"), default=0)
    malformed = models.PositiveIntegerField(_("malformed"), default=0)

    class Meta:
        verbose_name = _("fold run")
        verbose_name_plural = _("fold runs")
        ordering = ["-finished_at"]
        get_latest_by = "finished_at"

    def __str__(self) -> str:
        return f"{self.events} events at {self.finished_at:%Y-%m-%d %H:%M:%S}"


class ImportedChunk(models.Model):
    """The import ledger: a range of lines (or source rows) of one source whose increments were committed."""

    source = models.CharField(_("source"), max_length=64, help_text=_("A digest that identifies the imported source."))
    start = models.BigIntegerField(_("first line"))
    end = models.BigIntegerField(_("line after the last"))
    events = models.PositiveIntegerField(_("events"), default=0)
    imported_at = models.DateTimeField(_("imported at"))

    class Meta:
        verbose_name = _("imported chunk")
        verbose_name_plural = _("imported chunks")
        constraints = [models.UniqueConstraint(fields=["source", "start"], name="trackable_importedchunk_start")]

    def __str__(self) -> str:
        return f"{self.source[:12]} lines {self.start}–{self.end}"


class VisitorSalt(models.Model):
    """The random salt of one period of visitor hashing; deleted when the period ends (trackable.visitors)."""

    period_start = models.DateTimeField(_("period start"), unique=True)
    period_end = models.DateTimeField(_("period end"))
    salt = models.BinaryField(_("salt"), max_length=32)

    class Meta:
        verbose_name = _("visitor salt")
        verbose_name_plural = _("visitor salts")
        ordering = ["period_start"]

    def __str__(self) -> str:
        return f"salt of {self.period_start:%Y-%m-%d %H:%M}–{self.period_end:%Y-%m-%d %H:%M} UTC"


class Website(models.Model):
    """The site as a whole: the parent of site-wide page counts (row 1, created by the migration)."""

    name = models.CharField(_("name"), max_length=100)

    class Meta:
        verbose_name = _("website")
        verbose_name_plural = _("websites")

    def __str__(self) -> str:
        return self.name


class PageViews(TrackableTimeSeriesData):
    """Views of every page of the site per path per day, counted by trackable.middleware.PageViewMiddleware."""

    path = Dimension("path", max_length=255, verbose_name=_("path"))
    views = models.PositiveBigIntegerField(_("views"), default=0)
    spider_views = models.PositiveBigIntegerField(_("spider views"), default=0)

    spider_fields = {"views": "spider_views"}

    class Meta(TrackableTimeSeriesData.Meta):
        verbose_name = _("page views")
        verbose_name_plural = _("page views")
