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

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "webapp"
