"""Exceptions raised by django-trackable; each names the thing and the fix."""
from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "TrackableError",
    "AlreadyRegistered",
    "NotRegistered",
    "UnknownField",
    "AmbiguousField",
    "TrackableConnectionError",
    "MalformedMessage",
    "InvalidPrimaryKey",
    "QueryError",
    "TrackableDeprecationWarning",
    "ImproperlyConfigured",
]


class TrackableError(Exception):
    """Base class of every error django-trackable raises on purpose."""


class AlreadyRegistered(TrackableError):
    """The model is already registered with that data model."""


class NotRegistered(TrackableError):
    """The model (or data model) is not registered with the trackable site."""


class UnknownField(TrackableError, ValueError):
    """The field named in a tracking call is not a counter field of a registered data model."""


class AmbiguousField(TrackableError, ValueError):
    """Several data models registered for the object have the field; pass data_model= to choose."""


class TrackableConnectionError(TrackableError, ConnectionError):
    """The broker could not be reached within the configured timeout."""


class MalformedMessage(TrackableError, ValueError):
    """A message taken off the queue is not a valid django-trackable message."""


class InvalidPrimaryKey(TrackableError, ValueError):
    """The object's primary key cannot be stored by its data model (out of range, too long, a NUL)."""


class QueryError(TrackableError, ValueError):
    """The arguments of a query do not make sense (unknown field, end before start, ...)."""


class TrackableDeprecationWarning(DeprecationWarning):
    """A deprecated setting or call of django-trackable is in use."""
