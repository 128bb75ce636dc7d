"""Registration of the bench site, found by autodiscovery."""
import trackable

from .models import Item, ItemClients, ItemReferrers, ItemSearches, ItemTrackableData

trackable.site.register(Item, ItemTrackableData)
for breakdown in (ItemReferrers, ItemSearches, ItemClients):
    trackable.site.register(Item, breakdown)
