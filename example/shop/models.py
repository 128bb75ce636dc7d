"""A tiny game shop: items whose views and purchases are tracked, with their referrers and browsers."""
from django.db import models
from django.urls import reverse

import trackable


class Item(models.Model):
    name = models.CharField(max_length=60)
    price = models.PositiveIntegerField(help_text="in gold coins")
    wiki_url = models.URLField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("item", args=[self.pk])


class ItemTrackableData(trackable.TrackableTimeSeriesData):
    """Views and purchases of an item per day (the default granularity)."""

    views = models.PositiveIntegerField(default=0)
    purchases = models.PositiveIntegerField(default=0)
    wiki_clicks = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        verbose_name_plural = "item data (daily)"


class ItemHourlyData(trackable.TrackableTimeSeriesData):
    """Visits of an item page per hour."""

    visits = models.PositiveIntegerField(default=0)

    granularity = trackable.HOUR

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        verbose_name_plural = "item data (hourly)"


class ItemReferrers(trackable.TrackableTimeSeriesData):
    """Views of an item per referring site per day (a breakdown: see docs/breakdowns.rst)."""

    referrer = trackable.Dimension("referrer_host")
    views = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        verbose_name_plural = "item referrers"


class ItemBrowsers(trackable.TrackableTimeSeriesData):
    """Views of an item per browser and device type per day."""

    browser = trackable.Dimension("browser", max_length=60)
    device = trackable.Dimension("device", max_length=20)
    views = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        verbose_name_plural = "item browsers"
