"""manage.py trackable_replay_spool: deprecated name of trackable_relay (the journal replaced the spool)."""
from __future__ import annotations

import warnings
from typing import Any

from trackable.exceptions import TrackableDeprecationWarning
from trackable.management.commands.trackable_relay import Command as RelayCommand


class Command(RelayCommand):
    help = "Deprecated: use manage.py trackable_relay (the journal replaced the outage spool)."

    def handle(self, *args: Any, **options: Any) -> None:
        warnings.warn(
            "manage.py trackable_replay_spool is deprecated: the journal replaced the spool; run manage.py trackable_relay.",
            TrackableDeprecationWarning,
            stacklevel=2,
        )
        super().handle(*args, **options)
