"""Pages of the demo shop; each sends tracking messages and returns without writing the database."""
from django.db.models import Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from trackable.messaging import send_increment_message

from .models import Item, ItemHourlyData, ItemTrackableData


def index(request):
    totals = {
        row["object_id"]: row
        for row in ItemTrackableData.objects.values("object_id").annotate(views=Sum("views"), purchases=Sum("purchases"))
    }
    items = [(item, totals.get(item.pk, {})) for item in Item.objects.all()]
    return render(request, "shop/index.html", {"items": items})


def item_detail(request, pk):
    item = get_object_or_404(Item, pk=pk)
    send_increment_message(request, item, "views", data_model=ItemTrackableData)
    send_increment_message(request, item, "views", data_model=ItemHourlyData)
    rows = ItemTrackableData.objects.filter(object_id=item.pk).order_by("-collected_during")[:14]
    return render(request, "shop/item.html", {"item": item, "rows": rows})


@require_POST
def buy(request, pk):
    item = get_object_or_404(Item, pk=pk)
    send_increment_message(request, item, "purchases")
    return redirect(item)

