"""A URLconf for the import tests: function views mapped by name, a generic DetailView, a page without pk."""
from django.http import HttpResponse
from django.urls import path
from django.views.generic import DetailView

from tests.testapp.models import Player


def page(request, pk=None):
    return HttpResponse("ok")


class PlayerDetail(DetailView):
    model = Player
    trackable_field = "quests"


urlpatterns = [
    path("articles/<int:pk>/", page, name="article"),
    path("videos/<uuid:pk>/play/", page, name="video-play"),
    path("players/<str:pk>/", PlayerDetail.as_view(), name="player"),
    path("about/", page, name="about"),
    path("stories/<int:pk>/", page, name="story"),
]
