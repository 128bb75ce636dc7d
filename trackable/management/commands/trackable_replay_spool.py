"""manage.py trackable_replay_spool: publish the messages kept in TRACKABLE_SPOOL_DIR during an outage."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trackable.spool import get_spool


class Command(BaseCommand):
    help = "Publish the tracking messages spooled during a broker outage (oldest first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="Publish at most this many.")

    def handle(self, *args: Any, **options: Any) -> None:
        spool = get_spool()
        if spool is None:
            raise CommandError("TRACKABLE_SPOOL_DIR is not set, so there is no spool to replay.")
        before = len(spool)
        sent = spool.replay(options["limit"])
        left = len(spool)
        self.stdout.write(f"Replayed {sent} of {before} spooled messages; {left} left.")
        if left and options["limit"] is None:
            raise CommandError(f"The broker is still unreachable; {left} messages stay spooled.")
