"""The tracked view of the web kill harness: /track/<n>/ counts one download of article n.

Every request tracks its own object (n is unique per request), so the fold's rows show how often
each request was counted. The answer says whether send_increment_message returned True; a send that
raised (a broker outage with TRACKABLE_CAPTURE_CONNECTION_ERRORS off) answers False too.
"""
import logging

from django.http import HttpResponse
from django.urls import path

from tests.testapp.models import Article
from trackable.messaging import send_increment_message

logger = logging.getLogger("trackable.chaos")


def track(request, n):
    try:
        sent = send_increment_message(request, Article(pk=n), "downloads")  # no query: only the pk is needed
    except Exception as err:  # noqa: BLE001 - the harness counts what a view could not send
        logger.debug("send %d raised %r", n, err)
        sent = False
    answer = str(bool(sent))
    return HttpResponse(answer, content_type="text/plain", headers={"Content-Length": str(len(answer))})


def ready(request):
    return HttpResponse("ready", content_type="text/plain")


urlpatterns = [path("track/<int:n>/", track), path("", ready)]
