"""Click-through and beacon views: count a signed link's field out of band, without a database query.

Both views read everything from the signed token (trackable.links), build an unsaved stand-in of the
parent carrying its primary key and call send_increment_message: no query, no write on the request
path. GET never counts, so link prefetchers and mail scanners cannot inflate click-throughs, and one
client counts one token at most TRACKABLE_LINK_REPLAY_LIMIT times per window (trackable.replay).
"""
from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from trackable.exceptions import TrackableConnectionError
from trackable.links import BadLink, Link, read_link
from trackable.messaging import send_increment_message
from trackable.replay import guard

__all__ = ["track_object", "beacon"]

logger = logging.getLogger("trackable")

# Parameters an open-redirect attempt would add beside the token; their presence is refused outright.
REDIRECT_PARAMETERS = ("next", "url", "target", "to", "redirect", "redirect_to", "return", "goto")

REPLAYED = "This link was already counted as often as one client may count it; it counts again later."


class Redirect(HttpResponseRedirect):
    """A 302 redirect to an http(s) URL or a site path only."""

    allowed_schemes = ["http", "https"]


class SeeOther(Redirect):
    """A 303 redirect: after a POST, the browser follows it with a GET."""

    status_code = 303


def _count(request: HttpRequest, link: Link) -> bool:
    """Send the increment; a broker outage is logged and reported, never raised into the page."""
    try:
        return send_increment_message(request, link.instance(), link.field, data_model=link.data_model)
    except TrackableConnectionError as err:
        logger.warning("Click on %s.%s not counted, broker unreachable: %s", link.model.__name__, link.field, err)
        return False


def _bad(message: str) -> HttpResponseBadRequest:
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


@csrf_exempt  # sendBeacon, <a ping> and cross-page forms carry no CSRF token; the link is signed instead
@never_cache
def track_object(request: HttpRequest, token: str) -> HttpResponse:
    """Count a click-through on POST, then redirect to the signed target; on GET only redirect."""
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    if any(name in request.GET or name in request.POST for name in REDIRECT_PARAMETERS):
        return _bad("Tracking links redirect only to the target signed into them; remove the extra parameter.")
    try:
        link = read_link(token)
    except BadLink as err:
        return _bad(str(err))
    if not link.target:
        return _bad("This tracking link has no target to redirect to; link the object with a target.")
    if request.method == "POST" and guard.allow(token, request):  # a replay past the limit still redirects
        _count(request, link)
    return SeeOther(link.target) if request.method == "POST" else Redirect(link.target)


@csrf_exempt
@never_cache
@require_POST
def beacon(request: HttpRequest, token: str) -> JsonResponse:
    """Count the field of a signed link and answer JSON (for navigator.sendBeacon, fetch or <a ping>)."""
    try:
        link = read_link(token)
    except BadLink as err:
        return JsonResponse({"counted": False, "error": str(err)}, status=400)
    if not guard.allow(token, request):
        return JsonResponse({"counted": False, "error": REPLAYED}, status=429)
    counted = _count(request, link)
    return JsonResponse({"counted": counted, "field": link.field}, status=202 if counted else 200)
