import trackable

from .models import Item, ItemBrowsers, ItemHourlyData, ItemReferrers, ItemTrackableData

trackable.site.register(Item, ItemTrackableData)
trackable.site.register(Item, ItemHourlyData)
trackable.site.register(Item, ItemReferrers)  # every "views" of an item also counts here, by referrer
trackable.site.register(Item, ItemBrowsers)
