"""manage.py fold_trackable_messages [app.Model ...]: fold queued tracking messages into rows."""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from django import db
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from kombu.exceptions import OperationalError

from trackable.exceptions import TrackableConnectionError
from trackable.folding import FoldResult, process_messages
from trackable.sites import site
from trackable.status import unmigrated_error

logger = logging.getLogger("trackable")


class Command(BaseCommand):
    help = "Fold queued django-trackable messages into time-bucketed rows (all data models, or those named)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("data_models", nargs="*", metavar="app_label.Model", help="Only these data models.")
        parser.add_argument("--batch-size", type=int, default=None, help="Messages per transaction.")
        parser.add_argument("--max-messages", type=int, default=None, help="Stop after this many messages.")
        parser.add_argument("--loop", action="store_true", help="Keep folding every --interval seconds.")
        parser.add_argument("--interval", type=float, default=5.0, help="Seconds between folds with --loop.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")
        parser.add_argument(
            "--replay-dead-letters",
            action="store_true",
            help="First put the dead letters back on their queues (e.g. after widening a counter field).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = [self._data_model(label) for label in options["data_models"]] or None
        if options["replay_dead_letters"]:
            from trackable.deadletters import replay_dead_letters

            self.stdout.write(str(replay_dead_letters()))
        while True:
            try:
                result = process_messages(
                    chosen, batch_size=options["batch_size"], max_messages=options["max_messages"]
                )
            except (TrackableConnectionError, DatabaseError, OperationalError, OSError) as err:
                reason = (unmigrated_error(err) if isinstance(err, DatabaseError) else None) or err
                if not options["loop"]:
                    raise CommandError(f"The fold failed and nothing uncommitted was acked: {reason}") from err
                # A loop outlives outages: drop a broken database connection and try again later.
                logger.error("Fold failed, retrying in %gs: %s", options["interval"], reason)
                db.close_old_connections()
                for conn in db.connections.all():
                    conn.close_if_unusable_or_obsolete()
                time.sleep(options["interval"])
                continue
            except Exception:
                if not options["loop"]:
                    raise
                # Never a crash loop: an unforeseen error is logged with its traceback and the loop goes on.
                logger.exception("Fold failed unexpectedly, retrying in %gs", options["interval"])
                time.sleep(options["interval"])
                continue
            quiet = (
                options["loop"] and options["verbosity"] < 2 and not (result.messages or result.malformed or result.duplicates)
            )
            if not quiet:
                self._report(result, options["json"])
            if not options["loop"]:
                return
            time.sleep(options["interval"])

    def _data_model(self, label: str) -> Any:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError) as err:
            raise CommandError(f"Unknown model {label!r}: name a data model as app_label.ModelName.") from err
        if model not in site.data_models():
            known = ", ".join(sorted(dm._meta.label for dm in site.data_models())) or "none"
            raise CommandError(
                f"{model._meta.label} is not a registered trackable data model; registered data models: {known}."
            )
        return model

    def _report(self, result: FoldResult, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result.as_dict(), sort_keys=True))
        else:
            self.stdout.write(str(result))
            for reason, n in sorted(result.reasons.items()):
                self.stdout.write(f"  set aside: {n} × {reason}")
        self.stdout.flush()
