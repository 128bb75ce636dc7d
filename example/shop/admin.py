from django.contrib import admin

from trackable.admin import TrackableChartsMixin

from .models import Item


@admin.register(Item)
class ItemAdmin(TrackableChartsMixin, admin.ModelAdmin):
    list_display = ("name", "price")
    trackable_chart_days = 14
