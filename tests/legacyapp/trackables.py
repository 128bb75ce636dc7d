"""Registrations of the legacy app: a parent with a fine and a coarse data model."""
import trackable

from .models import Page, PageDayData, PageMinuteData

trackable.site.register(Page, PageMinuteData)
trackable.site.register(Page, PageDayData)
