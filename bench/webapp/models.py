"""The bench site's one page: an Item, with a views column for the F() variant and a data model for ours."""
from django.db import models

import trackable


class Item(models.Model):
    title = models.CharField(max_length=100)
    body = models.TextField()
    views = models.PositiveIntegerField(default=0)

    def __str__(self):
        return self.title


class ItemTrackableData(trackable.TrackableTimeSeriesData):
    views = models.PositiveIntegerField(default=0)
    reads = models.PositiveIntegerField(default=0)  # the variant counted in breakdowns too

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "webapp"


# The breakdowns of `reads` (the views of the "three breakdowns" variant): built-in sources only.
class ItemReferrers(trackable.TrackableTimeSeriesData):
    referrer = trackable.Dimension("referrer_host")
    reads = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "webapp"


class ItemSearches(trackable.TrackableTimeSeriesData):
    terms = trackable.Dimension("search_terms", max_length=100)
    reads = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "webapp"


class ItemClients(trackable.TrackableTimeSeriesData):
    browser = trackable.Dimension("browser", max_length=60)
    device = trackable.Dimension("device", max_length=20)
    reads = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "webapp"
