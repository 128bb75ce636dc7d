from django.contrib import admin
from django.urls import include, path
from shop import views

urlpatterns = [
    path("", views.index, name="index"),
    path("items/<int:pk>/", views.item_detail, name="item"),
    path("items/<int:pk>/buy/", views.buy, name="buy"),
    path("admin/", admin.site.urls),
    path("trackable/", include("trackable.urls")),
]
