"""Admin of the test project: Article shows the charts of its counters."""
from django.contrib import admin

from trackable.admin import TrackableChartsMixin

from .models import Article


@admin.register(Article)
class ArticleAdmin(TrackableChartsMixin, admin.ModelAdmin):
    list_display = ("title",)
    trackable_chart_fields = ("impressions", "reads")
    trackable_chart_days = 14
