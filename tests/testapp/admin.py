"""Admin of the test project: Article shows the charts of its counters, Story its views and breakdowns."""
from django.contrib import admin

from trackable.admin import TrackableChartsMixin

from .models import Article, Story


@admin.register(Article)
class ArticleAdmin(TrackableChartsMixin, admin.ModelAdmin):
    list_display = ("title",)
    trackable_chart_fields = ("impressions", "reads")
    trackable_chart_days = 14


@admin.register(Story)
class StoryAdmin(TrackableChartsMixin, admin.ModelAdmin):
    trackable_chart_fields = ("views",)
    trackable_chart_days = 7
