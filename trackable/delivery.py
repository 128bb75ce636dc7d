"""Publish from the request (TRACKABLE_JOURNAL = False): capture or raise when the broker cannot take it."""
from __future__ import annotations

from trackable import messages, outage, transport
from trackable.conf import settings
from trackable.exceptions import TrackableConnectionError

__all__ = ["deliver", "deliver_grouped"]


def deliver(body: bytes, data_label: str, events: int = 1) -> bool:
    """Publish one body; on a broker failure return False (TRACKABLE_CAPTURE_CONNECTION_ERRORS) or raise."""
    try:
        transport.publish(body, data_label)
        return True
    except TrackableConnectionError as err:
        outage.report_failure(err, kept=False, lost=events)
        if settings.CAPTURE_CONNECTION_ERRORS:
            return False
        raise TrackableConnectionError(f"{err} {CAPTURE_HINT}") from err


CAPTURE_HINT = (
    "To log this and carry on while the broker is down, set TRACKABLE_CAPTURE_CONNECTION_ERRORS = True "
    "(or TRACKABLE_JOURNAL = True to keep the events on disk and send them once it is back)."
)


def deliver_grouped(grouped: dict[str, list[tuple]]) -> bool:
    """Publish one message per data model of one send; return whether all were published."""
    return all([deliver(messages.build(events), data_label, len(events)) for data_label, events in grouped.items()])
