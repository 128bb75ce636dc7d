"""manage.py trackable_relay: publish what the journal of this host holds (segments of processes that died)."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trackable import journal, relay
from trackable.conf import settings
from trackable.exceptions import TrackableConnectionError


class Command(BaseCommand):
    help = "Relay the journal segments left by processes that died (or exited with the broker down) to the broker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0, help="Give up after this many seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        folder = settings.journal_dir
        if folder is None:
            raise CommandError("The trackable journal has no folder: set TRACKABLE_JOURNAL_DIR (or BASE_DIR).")
        try:
            sent = relay.flush(options["timeout"])
        except TrackableConnectionError as err:
            left = relay.journal_backlog(folder)
            raise CommandError(f"The broker is unreachable ({err}); {left} bytes stay in the journal.") from err
        left = relay.journal_backlog(folder)
        damaged = journal.damaged_count(folder)
        self.stdout.write(f"Relayed {sent} events; {left} bytes left in the journal; {damaged} files set aside.")
        if left:
            self.stdout.write("What is left belongs to live processes, whose own relays publish it.")
