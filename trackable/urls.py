"""URLs of django-trackable: include them with path("trackable/", include("trackable.urls"))."""
from django.urls import path

from trackable import api, api_breakdowns, dashboard, views

app_name = "trackable"

urlpatterns = [
    path("go/<str:token>/", views.track_object, name="track"),
    path("beacon/<str:token>/", views.beacon, name="beacon"),
    path("api/status/", api.status_view, name="api-status"),
    path("api/<str:parent>/top/", api.top_view, name="api-top"),
    path("api/<str:parent>/breakdown/", api_breakdowns.breakdown_view, name="api-breakdown"),
    path("api/<str:parent>/<str:pk>/breakdown/", api_breakdowns.object_breakdown_view, name="api-object-breakdown"),
    path("api/<str:parent>/<str:pk>/breakdown/series/", api_breakdowns.breakdown_series_view, name="api-breakdown-series"),
    path("api/<str:parent>/<str:pk>/series/", api.series_view, name="api-series"),
    path("api/<str:parent>/<str:pk>/totals/", api.totals_view, name="api-totals"),
    path("dashboard/", dashboard.dashboard_view, name="dashboard"),
]
