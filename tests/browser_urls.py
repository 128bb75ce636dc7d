"""URLs of the browser test: the test project's, plus a page with a tracked link."""
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template import Context, Template
from django.urls import path

from tests.testapp.models import Article
from tests.urls import urlpatterns as project_urlpatterns

PAGE = Template(
    "{% load trackable_tags %}<!doctype html><html lang=en><head><title>{{ article }}</title>"
    "{% trackable_beacon_script %}</head><body>"
    '{% tracked_link article "click_throughs" "/landed/" text="Read on" id="go" %}'
    "</body></html>"
)


def article_page(request, pk):
    return HttpResponse(PAGE.render(Context({"article": get_object_or_404(Article, pk=pk)})))


def landed(request):
    return HttpResponse("<!doctype html><title>Landed</title><p id=landed>Landed</p>")


urlpatterns = [
    path("page/<int:pk>/", article_page),
    path("landed/", landed),
    *project_urlpatterns,
]
