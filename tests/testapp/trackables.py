"""Registrations of the test project, found by autodiscovery."""
import trackable

from .models import (
    Article,
    ArticleHourlyData,
    ArticleTotals,
    ArticleTrackableData,
    Page,
    PageData,
    Player,
    PlayerTrackableData,
    PlayerVisitData,
    Video,
    VideoTrackableData,
)

trackable.site.register(Article, ArticleTrackableData)
trackable.site.register(Article, ArticleHourlyData)
trackable.site.register(Article, ArticleTotals)
trackable.site.register(Video, VideoTrackableData)
trackable.site.register(Player, PlayerTrackableData)
trackable.site.register(Player, PlayerVisitData)
trackable.site.register(Page, PageData)
