"""Models of a site before django-trackable: the sources convert_tracking_data reads."""
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models

from tests.testapp.models import Article
from trackable import MINUTE
from trackable.models import TrackableTimeSeriesData


class Hit(models.Model):  # noqa: DJ008 - a test model; the default "Model object (pk)" is enough
    """An old hits table: one row per object and day, pointing at its object through a generic relation."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, null=True)
    object_id = models.CharField(max_length=64, null=True)  # noqa: DJ001 - mirrors an old schema the converter reads
    target = GenericForeignKey("content_type", "object_id")
    day = models.DateField(null=True)
    hits = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    ratio = models.FloatField(default=0)


class PageView(models.Model):  # noqa: DJ008 - a test model; the default "Model object (pk)" is enough
    """One row per view, with a foreign key to the article and the moment it happened."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, null=True)
    title = models.CharField(max_length=100, blank=True)
    viewed_at = models.DateTimeField(null=True)
    views = models.IntegerField(default=1)


class Visit(models.Model):  # noqa: DJ008 - a test model; the default "Model object (pk)" is enough
    """A row two foreign keys away from its parent: visit.page_view.article."""

    page_view = models.ForeignKey(PageView, on_delete=models.CASCADE)
    seconds = models.IntegerField(default=0)


class Page(models.Model):  # noqa: DJ008 - a test model; the default "Model object (pk)" is enough
    """A parent with a fine and a coarse data model, registered only by the retention tests."""

    path = models.CharField(max_length=100)


class PageMinuteData(TrackableTimeSeriesData):
    views = models.PositiveIntegerField(default=0)
    score = models.IntegerField(default=0)

    granularity = MINUTE

    class Meta(TrackableTimeSeriesData.Meta):
        app_label = "legacyapp"


class PageDayData(TrackableTimeSeriesData):
    views = models.PositiveBigIntegerField(default=0)
    score = models.BigIntegerField(default=0)
    visitors = models.PositiveIntegerField(default=0)

    class Meta(TrackableTimeSeriesData.Meta):
        app_label = "legacyapp"
