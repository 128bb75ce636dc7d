"""Publish one message body, and what to do when the broker cannot take it (spool, capture or raise)."""
from __future__ import annotations

import logging

from trackable import outage, transport
from trackable.conf import settings
from trackable.exceptions import TrackableConnectionError
from trackable.spool import ensure_replayer, get_spool

__all__ = ["deliver"]

logger = logging.getLogger("trackable")


def deliver(body: bytes, data_label: str) -> bool:
    """Publish one body; during an outage spool it, or capture the error, or raise it (in that order)."""
    try:
        transport.publish(body, data_label)
        return True
    except TrackableConnectionError as err:
        spool = get_spool()
        if spool is not None:
            try:
                spool.put(body, data_label)
            except OSError as spool_error:
                logger.error("Could not spool a tracking message: %s", spool_error)
            else:
                outage.report_failure(err, spooled=True)
                ensure_replayer()
                return True
        outage.report_failure(err, spooled=False)
        if settings.CAPTURE_CONNECTION_ERRORS:
            return False
        raise TrackableConnectionError(f"{err} {CAPTURE_HINT}") from err


CAPTURE_HINT = (
    "To log this and carry on while the broker is down, set TRACKABLE_CAPTURE_CONNECTION_ERRORS = True "
    "(or TRACKABLE_SPOOL_DIR to keep the events and send them once it is back)."
)
