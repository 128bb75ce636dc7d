"""manage.py trim_trackable_data [app.Model ...]: roll old buckets up and delete what is too old."""
from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from trackable.retention import parse_policies, policy_from, trim


class Command(BaseCommand):
    help = (
        "Apply TRACKABLE_RETENTION (or the policy given by options to one data model): move the counts of old "
        "fine buckets into coarser ones, then delete rows older than the limit. Safe while folds run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("data_models", nargs="*", metavar="app_label.Model", help="Only these data models.")
        parser.add_argument("--rollup-after", type=float, metavar="DAYS", help="Roll up buckets older than this many days.")
        parser.add_argument("--rollup-to", metavar="GRANULARITY|app_label.Model", help="Coarser granularity or data model.")
        parser.add_argument("--delete-after", type=float, metavar="DAYS", help="Delete rows older than this many days.")
        parser.add_argument("--batch-size", type=int, default=1000, help="Rows per transaction (default 1000).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would change, change nothing.")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError(f"--batch-size must be a positive number of rows, not {options['batch_size']}.")
        try:
            policies = self._policies(options)
        except ImproperlyConfigured as err:
            raise CommandError(str(err)) from err
        results = [trim(p, batch_size=options["batch_size"], dry_run=options["dry_run"]) for p in policies]
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in results], sort_keys=True))
            return
        verb = "would" if options["dry_run"] else ""
        for r in results:
            into = f" into {r.into}" if r.into else ""
            self.stdout.write(
                f"{r.data_model}: {r.rolled_rows} rows {verb + ' be ' if verb else ''}rolled up{into} "
                f"({r.target_rows} coarse row updates), {r.deleted_rows} rows {verb + ' be ' if verb else ''}deleted."
            )

    def _policies(self, options: dict[str, Any]) -> list[Any]:
        explicit = {
            "rollup_after_days": options["rollup_after"],
            "rollup_to": options["rollup_to"],
            "delete_after_days": options["delete_after"],
        }
        explicit = {k: v for k, v in explicit.items() if v is not None}
        if explicit:
            if len(options["data_models"]) != 1:
                raise CommandError("--rollup-after, --rollup-to and --delete-after apply to one data model; name exactly one.")
            return [policy_from(options["data_models"][0], explicit)]
        policies = parse_policies()
        if options["data_models"]:
            wanted = {label.lower() for label in options["data_models"]}
            chosen = [p for p in policies if p.data_model._meta.label_lower in wanted]
            known = {p.data_model._meta.label_lower for p in policies}
            missing = sorted(wanted - known)
            if missing:
                label = missing[0]
                raise CommandError(
                    f"TRACKABLE_RETENTION has no policy for {label!r}; add one or give --rollup-after/--delete-after."
                )
            return chosen
        if not policies:
            raise CommandError(
                "TRACKABLE_RETENTION is empty, so there is nothing to trim; set it or give options for one data model."
            )
        return policies
