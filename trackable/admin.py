"""Django admin for data models (registered only when DEBUG is on, unless TRACKABLE_REGISTER_ADMIN says)."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from trackable.conf import settings
from trackable.fields import dimension_fields, is_breakdown, unique_fields
from trackable.models import Spider, TrackableTimeSeriesData, counter_fields

__all__ = [
    "TrackableDataAdmin",
    "ParentTypeFilter",
    "TrackableChartsMixin",
    "SpiderAdmin",
    "register_data_model_admin",
    "unregister_data_model_admin",
]


class ParentTypeFilter(admin.RelatedFieldListFilter):
    """Filter a data model's rows by parent type, offering only the parents it is registered for."""

    def field_choices(  # type: ignore[override]  # the stub says str keys; Django's own choices are pks
        self, field: Any, request: Any, model_admin: Any
    ) -> list[tuple[Any, str]]:
        from django.contrib.contenttypes.models import ContentType

        from trackable.sites import site

        types = ContentType.objects.get_for_models(*site.parents_of(model_admin.model)).values()
        return sorted(((ct.pk, str(ct)) for ct in types), key=lambda choice: choice[1])


class TrackableDataAdmin(admin.ModelAdmin):
    """The default admin of a data model: the parent, the bucket and every counter, read-only.

    Above the change list, a chart per counter sums the listed rows (filters and drill-down applied).
    """

    list_select_related = ("content_type",)
    search_fields = ("object_id",)
    change_list_template = "trackable/admin/change_list.html"

    def __init__(self, model: type[models.Model], admin_site: Any) -> None:
        super().__init__(model, admin_site)
        if self.date_hierarchy is None and issubclass(model, TrackableTimeSeriesData):
            # Drill down by year, month and day of the bucket, on top of the list filter.
            self.date_hierarchy = "collected_during"  # type: ignore[misc]  # per data model; Django reads the instance

    def get_list_display(self, request: Any) -> list[Any]:
        model: type[models.Model] = self.model
        timed = ["collected_during"] if issubclass(model, TrackableTimeSeriesData) else []
        dimensions = [f.name for f in dimension_fields(model)]
        return ["content_type", "object_id", *timed, *dimensions, *counter_fields(model)]

    def get_search_fields(self, request: Any) -> list[str]:
        # A breakdown's rows are also found by their values (a referrer, a path).
        model: type[models.Model] = self.model
        return [*self.search_fields, *(f.name for f in dimension_fields(model))]

    def get_list_filter(self, request: Any) -> list[Any]:
        timed = [("collected_during", admin.DateFieldListFilter)] if issubclass(self.model, TrackableTimeSeriesData) else []
        return [("content_type", ParentTypeFilter), *timed]

    def changelist_view(self, request: Any, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        if "cl" in context:  # a TemplateResponse of the list (not a redirect or an action's page)
            from trackable.adminchart import changelist_charts

            context["trackable_charts"] = changelist_charts(context["cl"].queryset)
        return response

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        # Counts change only through the fold, so edits cannot race a worker's increments.
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        # Read-only: rows go away through retention (trim_trackable_data), not by hand.
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


class TrackableChartsMixin:
    """Show charts of a parent's counters on its change page; mix into the parent's ModelAdmin.

    ``class ArticleAdmin(TrackableChartsMixin, admin.ModelAdmin)``. The charts appear as a read-only
    field named ``trackable_charts`` (add it to ``fieldsets`` yourself if you declare them).
    """

    trackable_chart_fields: tuple[str, ...] | None = None  # None: every counter of every time-series data model
    trackable_chart_days: int | None = None  # None: TRACKABLE_DEFAULT_WINDOW_DAYS
    trackable_chart_granularity: str | None = None  # None: the data model's, rolled up to days if finer

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return fields if "trackable_charts" in fields else (*fields, "trackable_charts")

    def get_trackable_chart_fields(self, obj: models.Model) -> list[tuple[str, type[models.Model]]]:
        """Return the (field, data model) pairs to chart for `obj`."""
        from trackable.sites import site

        pairs: list[tuple[str, type[models.Model]]] = [
            (name, dm)
            for dm in site.get_data_models(type(obj))
            if issubclass(dm, TrackableTimeSeriesData)
            for name in (*counter_fields(dm), *(f.name for f in unique_fields(dm)))
        ]
        if self.trackable_chart_fields is not None:
            pairs = [(name, dm) for name, dm in pairs if name in self.trackable_chart_fields]
        return pairs

    @admin.display(description=_("Counts"))
    def trackable_charts(self, obj: models.Model | None) -> str:
        """Render one chart per counter (one SQL query each); a breakdown's counter as bars per dimension (one query each)."""
        from trackable.charts import breakdown_chart_of, chart_of

        if obj is None or obj.pk is None:
            return "—"
        days = self.trackable_chart_days
        charts = []
        for name, dm in self.get_trackable_chart_fields(obj):
            if not is_breakdown(dm):
                charts.append(chart_of(obj, name, days=days, granularity=self.trackable_chart_granularity, data_model=dm))
            elif name not in getattr(dm, "spider_fields", {}).values():
                charts += [breakdown_chart_of(obj, f.name, name, days=days, data_model=dm) for f in dimension_fields(dm)]
        return format_html_join("", "{}", ((chart,) for chart in charts))


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
