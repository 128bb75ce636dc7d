"""The variants of bench_web.py: the same Item page, counted in different ways (or not at all)."""
from django.db.models import F
from django.shortcuts import get_object_or_404, render
from hitcount.views import HitCountDetailView

from trackable.messaging import send_increment_message

from .models import Item

TEMPLATE = "webapp/item.html"


def plain(request, pk):
    """The page, not counted: the ceiling."""
    return render(request, TEMPLATE, {"object": get_object_or_404(Item, pk=pk)})


def update(request, pk):
    """The page, counted by one UPDATE … SET views = views + 1 per hit."""
    item = get_object_or_404(Item, pk=pk)
    Item.objects.filter(pk=pk).update(views=F("views") + 1)
    return render(request, TEMPLATE, {"object": item})


def tracked(request, pk):
    """The page, counted by send_increment_message (out of band)."""
    item = get_object_or_404(Item, pk=pk)
    send_increment_message(request, item, "views")
    return render(request, TEMPLATE, {"object": item})


def breakdowns(request, pk):
    """The page, counted by send_increment_message in the totals and three breakdowns (referrer, search terms, client)."""
    item = get_object_or_404(Item, pk=pk)
    send_increment_message(request, item, "reads")
    return render(request, TEMPLATE, {"object": item})


class HitCountItem(HitCountDetailView):
    """The page, counted as django-hitcount documents it: a HitCountDetailView with count_hit = True."""

    model = Item
    count_hit = True
    template_name = TEMPLATE
