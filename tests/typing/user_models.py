"""A user's data model written as the quickstart does: mypy with django-stubs must accept this file.

Type-checked by the tox env `lint` (never imported by the tests: it would add a model to testapp).
"""
from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models
from django.http import HttpRequest
from typing_extensions import assert_type

import trackable
from tests.testapp.models import Article, ArticleTrackableData
from trackable.messaging import send_increment_message


class ArticleReads(trackable.TrackableTimeSeriesData):
    reads = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


trackable.site.register(Article, ArticleReads)


class VideoReads(trackable.TrackableTimeSeriesData):
    # A parent with a UUID primary key: object_id is redeclared, as docs/data-models.rst says.
    object_id = models.UUIDField()  # type: ignore[assignment]
    reads = models.PositiveIntegerField(default=0)
    visitors = trackable.UniqueVisitors()

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


def video_of(row: VideoReads) -> uuid.UUID:
    assert_type(row.object_id, uuid.UUID)
    return row.object_id


def bucket_of(row: ArticleReads) -> datetime:
    # The inherited fields are typed, not Any: the base class is the real abstract model.
    assert_type(row.collected_during, datetime)
    assert_type(row.object_id, int)
    return row.collected_during


def count_read(request: HttpRequest | None, article: Article) -> bool:
    return send_increment_message(request, article, "reads")


# Queries go through a data model of an installed app (as a user's models.py or trackables.py is),
# where django-stubs knows its manager and fields.
def total_impressions(article: Article) -> int:
    return sum(ArticleTrackableData.objects.filter(object_id=article.pk).values_list("impressions", flat=True))


def latest_bucket(article: Article) -> str:
    row = ArticleTrackableData.objects.filter(object_id=article.pk).order_by("-collected_during").first()
    return "never" if row is None else row.collected_during.isoformat()


class ArticleReferrers(trackable.TrackableTimeSeriesData):
    # A breakdown (docs/breakdowns.rst): a built-in source and a custom one.
    referrer = trackable.Dimension("referrer_host")
    plan = trackable.Dimension(lambda request: request.GET.get("plan"), max_length=40, max_values=50)
    reads = models.PositiveIntegerField(default=0)

    class Meta(trackable.TrackableTimeSeriesData.Meta):
        app_label = "testapp"


def referrer_of(row: ArticleReferrers) -> str:
    assert_type(row.referrer, str)
    return row.referrer


def count_read_from(article: Article) -> bool:
    return send_increment_message(None, article, "reads", dimensions={"referrer": "newsletter.example"})
