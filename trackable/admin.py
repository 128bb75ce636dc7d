"""Django admin for data models (registered only when DEBUG is on, unless TRACKABLE_REGISTER_ADMIN says)."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models

from trackable.conf import settings
from trackable.models import Spider, TrackableTimeSeriesData, counter_fields

__all__ = ["TrackableDataAdmin", "SpiderAdmin", "register_data_model_admin", "unregister_data_model_admin"]


class TrackableDataAdmin(admin.ModelAdmin):
    """The default admin of a data model: the parent, the bucket and every counter, read-only."""

    list_select_related = ("content_type",)
    search_fields = ("object_id",)

    def get_list_display(self, request: Any) -> list[str]:
        timed = ["collected_during"] if issubclass(self.model, TrackableTimeSeriesData) else []
        return ["content_type", "object_id", *timed, *counter_fields(self.model)]

    def get_list_filter(self, request: Any) -> list[Any]:
        timed = [("collected_during", admin.DateFieldListFilter)] if issubclass(self.model, TrackableTimeSeriesData) else []
        return ["content_type", *timed]


    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        # Counts change only through the fold, so edits cannot race a worker's increments.
        return False


class SpiderForm(forms.ModelForm):
    """The Spider form: a pattern must compile in the engine the matcher uses."""

    class Meta:
        model = Spider
        fields = ["pattern", "description", "is_active"]

    def clean_pattern(self) -> str:
        from trackable.spiders import check_pattern

        pattern = self.cleaned_data["pattern"]
        try:
            check_pattern(pattern)
        except ValueError as err:
            raise forms.ValidationError(str(err)) from err
        return pattern


class SpiderAdmin(admin.ModelAdmin):
    """Edit the user-agent patterns excluded when TRACKABLE_USER_AGENT_FILTERING is on."""

    form = SpiderForm

    list_display = ("pattern", "description", "is_active", "updated")
    list_filter = ("is_active",)
    search_fields = ("pattern", "description")


def register_data_model_admin(data_model: type[models.Model], admin_class: Any = None) -> bool:
    """Register `data_model` with Django's admin when TRACKABLE_REGISTER_ADMIN (default: DEBUG) allows."""
    if not settings.register_admin or admin.site.is_registered(data_model):
        return False
    admin.site.register(data_model, admin_class or TrackableDataAdmin)
    return True


def unregister_data_model_admin(data_model: type[models.Model]) -> None:
    """Remove `data_model` from Django's admin if it is there."""
    if admin.site.is_registered(data_model):
        admin.site.unregister(data_model)


admin.site.register(Spider, SpiderAdmin)
