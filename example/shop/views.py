"""Pages of the demo shop; each sends tracking messages and returns without writing the database."""
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from trackable import query
from trackable.messaging import send_increment_message
from trackable.middleware import website

from .models import Item


def index(request):
    # Items ordered by their views over the last 7 days: one SQL query, from the folded rows.
    start, end = query.last_buckets(7, "day")
    items = query.annotate_total(Item.objects.all(), "views", start, end, name="views_7d").order_by("-views_7d", "name")
    context = {"items": items, "website": website(), "last_folded": query.last_folded()}
    return render(request, "shop/index.html", context)


def item_detail(request, pk):
    item = get_object_or_404(Item, pk=pk)
    send_increment_message(request, item, "views")  # ItemTrackableData, ItemReferrers and ItemBrowsers
    send_increment_message(request, item, "visits")
    return render(request, "shop/item.html", {"item": item, "last_folded": query.last_folded()})


@require_POST
def buy(request, pk):
    item = get_object_or_404(Item, pk=pk)
    send_increment_message(request, item, "purchases")
    return redirect(item)
