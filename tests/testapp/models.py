"""Parent models and data models of the test project: integer, UUID and string primary keys."""
import uuid

from django.db import models

import trackable


class Article(models.Model):
    title = models.CharField(max_length=100)

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return f"/articles/{self.pk}/"


class Video(models.Model):  # noqa: DJ008 - a test model; the default "Model object (pk)" is enough
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    title = models.CharField(max_length=100)


class Player(models.Model):  # noqa: DJ008 - a test model; the default "Model object (pk)" is enough
    handle = models.CharField(max_length=40, primary_key=True)


class ArticleTrackableData(trackable.TrackableTimeSeriesData):
    impressions = models.PositiveIntegerField(default=0)
    click_throughs = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class ArticleHourlyData(trackable.TrackableTimeSeriesData):
    reads = models.PositiveIntegerField(default=0)

    granularity = trackable.HOUR

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class ArticleTotals(trackable.TrackableData):
    downloads = models.PositiveBigIntegerField(default=0)

    class Meta(trackable.TrackableData.Meta):
        app_label = "testapp"


class VideoTrackableData(trackable.TrackableTimeSeriesData):
    object_id = models.UUIDField()  # type: ignore[assignment]  # narrows the base's int (docs/data-models.rst)
    plays = models.PositiveIntegerField(default=0)
    score = models.IntegerField(default=0)  # may go negative: no clamping

    granularity = trackable.MINUTE

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class PlayerTrackableData(trackable.TrackableTimeSeriesData):
    object_id = models.CharField(max_length=40)  # type: ignore[assignment]  # narrows the base's int (docs/data-models.rst)
    quests = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


# Models for registry tests: never registered with the default site.
class Gadget(models.Model):  # noqa: DJ008 - a test model; the default "Model object (pk)" is enough
    name = models.CharField(max_length=40)


class GadgetData(trackable.TrackableTimeSeriesData):
    hits = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class NoCounterData(trackable.TrackableData):
    label = models.CharField(max_length=10, blank=True)

    class Meta(trackable.TrackableData.Meta):
        app_label = "testapp"


class OddGranularityData(trackable.TrackableTimeSeriesData):
    hits = models.PositiveIntegerField(default=0)

    granularity = "fortnight"

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class GadgetHourlyData(trackable.TrackableTimeSeriesData):
    hits = models.PositiveIntegerField(default=0)

    granularity = trackable.HOUR

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class PlayerVisitData(trackable.TrackableTimeSeriesData):
    """Visits of a player page, with spiders' visits counted apart (see docs/spiders.rst)."""

    object_id = models.CharField(max_length=40)  # type: ignore[assignment]  # narrows the base's int (docs/data-models.rst)
    visits = models.PositiveIntegerField(default=0)
    spider_visits = models.PositiveIntegerField(default=0)

    spider_fields = {"visits": "spider_visits"}

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class Page(models.Model):  # noqa: DJ008 - a test model; the default "Model object (pk)" is enough
    """A page whose visitors are counted once each (see docs/uniques.rst)."""

    path = models.CharField(max_length=100)


class PageData(trackable.TrackableTimeSeriesData):
    """Views and shares of a page, with the distinct visitors of each day."""

    views = models.PositiveIntegerField(default=0)
    shares = models.PositiveIntegerField(default=0)
    spider_views = models.PositiveIntegerField(default=0)
    visitors = trackable.UniqueVisitors()
    sharers = trackable.UniqueVisitors(of=["shares"])

    spider_fields = {"views": "spider_views"}

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"



class Story(models.Model):
    """A story whose views are broken down by referrer, search terms and client (see docs/breakdowns.rst)."""

    title = models.CharField(max_length=100)

    def __str__(self):
        return self.title


class StoryData(trackable.TrackableTimeSeriesData):
    views = models.PositiveIntegerField(default=0)
    shares = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class StoryReferrers(trackable.TrackableTimeSeriesData):
    referrer = trackable.Dimension("referrer_host")
    views = models.PositiveIntegerField(default=0)
    spider_views = models.PositiveIntegerField(default=0)

    spider_fields = {"views": "spider_views"}

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class StorySearches(trackable.TrackableTimeSeriesData):
    terms = trackable.Dimension("search_terms", max_length=100)
    views = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


def plan_of(request):
    """A custom source: the plan named in the query string."""
    return request.GET.get("plan")


class StoryClients(trackable.TrackableTimeSeriesData):
    browser = trackable.Dimension("browser", max_length=60)
    device = trackable.Dimension("device", max_length=20, max_values=3)
    plan = trackable.Dimension(plan_of, max_length=10)
    views = models.PositiveIntegerField(default=0)

    granularity = trackable.HOUR

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class Guide(models.Model):
    """A guide whose views are broken down by built-in sources only (bench/bench_breakdowns.py measures it)."""

    title = models.CharField(max_length=100)

    def __str__(self):
        return self.title


class GuideData(trackable.TrackableTimeSeriesData):
    views = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class GuideReferrers(trackable.TrackableTimeSeriesData):
    referrer = trackable.Dimension("referrer_host")
    views = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class GuideSearches(trackable.TrackableTimeSeriesData):
    terms = trackable.Dimension("search_terms", max_length=100)
    views = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


class GuideClients(trackable.TrackableTimeSeriesData):
    browser = trackable.Dimension("browser", max_length=60)
    device = trackable.Dimension("device", max_length=20)
    views = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"
