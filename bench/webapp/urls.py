from django.urls import path

from . import views

urlpatterns = [
    path("", lambda request: views.plain(request, 1)),
    path("plain/<int:pk>/", views.plain),
    path("update/<int:pk>/", views.update),
    path("tracked/<int:pk>/", views.tracked),
    path("breakdowns/<int:pk>/", views.breakdowns),
    path("hitcount/<int:pk>/", views.HitCountItem.as_view()),
]
