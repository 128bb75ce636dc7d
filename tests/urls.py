from django.contrib import admin
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import include, path

from tests.testapp.models import Article, Player, Story, Video
from trackable.messaging import send_increment_message, send_message


def article_detail(request, pk):
    article = get_object_or_404(Article, pk=pk) if request.GET.get("lookup") else Article(pk=pk)
    sent = send_increment_message(request, article, "impressions")
    send_increment_message(request, article, "reads")
    return HttpResponse(f"{article.pk} sent={sent}")


def video_play(request, pk):
    video = Video(pk=pk)
    return JsonResponse({"sent": send_increment_message(request, video, "plays")})


def player_visit(request, pk):
    # One call, two data models: PlayerVisitData counts spiders apart, PlayerTrackableData drops them.
    return JsonResponse({"sent": send_message(request, Player(pk=pk), {"visits": 1, "quests": 1})})


def story_detail(request, pk):
    # The seed scenario of docs/breakdowns.rst: the story's totals, referrers and search terms in one call.
    return HttpResponse(f"sent={send_increment_message(request, Story(pk=pk), 'views')}")


def page(request, name):
    return HttpResponse(f"page {name}")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("trackable/", include("trackable.urls")),
    path("articles/<int:pk>/", article_detail, name="article"),
    path("videos/<uuid:pk>/play/", video_play, name="video-play"),
    path("players/<str:pk>/visit/", player_visit, name="player-visit"),
    path("stories/<int:pk>/", story_detail, name="story"),
    path("pages/<str:name>/", page, name="page"),
    path("static/<str:name>", page, name="fake-static"),
]
