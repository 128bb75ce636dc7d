"""Registrations of the test project, found by autodiscovery."""
import trackable
from trackable.models import PageViews, Website

from .models import (
    Article,
    ArticleHourlyData,
    ArticleTotals,
    ArticleTrackableData,
    Guide,
    GuideClients,
    GuideData,
    GuideReferrers,
    GuideSearches,
    Page,
    PageData,
    Player,
    PlayerTrackableData,
    PlayerVisitData,
    Story,
    StoryClients,
    StoryData,
    StoryReferrers,
    StorySearches,
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
trackable.site.register(Story, StoryData)
trackable.site.register(Story, StoryReferrers)
trackable.site.register(Story, StorySearches)
trackable.site.register(Story, StoryClients)
for guide_model in (GuideData, GuideReferrers, GuideSearches, GuideClients):
    trackable.site.register(Guide, guide_model)

# The built-in site-wide page counter (registered by the app itself when PageViewMiddleware is installed).
trackable.site.register(Website, PageViews)
