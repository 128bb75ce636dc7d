"""Registration of the bench site, found by autodiscovery."""
import trackable

from .models import Item, ItemTrackableData

trackable.site.register(Item, ItemTrackableData)
