import trackable

from .models import Item, ItemHourlyData, ItemTrackableData

trackable.site.register(Item, ItemTrackableData)
trackable.site.register(Item, ItemHourlyData)
