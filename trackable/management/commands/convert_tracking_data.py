"""manage.py convert_tracking_data source_model dest_data_model: bring existing counters into trackable."""
from __future__ import annotations

import json
import time
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from trackable.convert import ADD, REPLACE, Conversion, ConversionError, parse_pairs, run_add, run_replace
from trackable.exceptions import TrackableError
from trackable.importing import ImportStats, Progress, progress_stream


class Command(BaseCommand):
    help = (
        "Copy the counters of an existing model into a trackable data model. --mode add (default) adds them "
        "to what is there and records each chunk in the import ledger, so a second run adds nothing; "
        "--mode replace sets the mapped counters of the touched rows to the source's sums."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source_model", metavar="source_app.Model", help="The model holding the old counters.")
        parser.add_argument("dest_model", metavar="dest_app.DataModel", help="The registered trackable data model.")
        parser.add_argument("--update-fields", "--fields", dest="update_fields", required=False,
                            help="source:dest counter pairs, comma separated, e.g. hits:impressions (1:impressions counts rows).")
        parser.add_argument("--link-field", help="Path from a source row to its parent object (dots follow foreign keys).")
        parser.add_argument(
            "--match-spec", help="source_attr:app_label.Model[:parent_attr]: find the parent by a matching attribute."
        )
        parser.add_argument("--bucket-field", help="Date or datetime field of the source saying when the counts happened.")
        parser.add_argument("--key-fields", help="The original's spelling of --bucket-field: source_field:collected_during.")
        parser.add_argument(
            "--order-by", help="Comma-separated fields to order the source rows by (the primary key breaks ties)."
        )
        parser.add_argument("--max-records", type=int, help="Read at most this many source rows.")
        parser.add_argument("--mode", choices=[ADD, REPLACE], default=ADD, help="add (default, ledgered) or replace.")
        parser.add_argument("--chunk-size", type=int, default=None, help="Source rows per transaction.")
        parser.add_argument("--dry-run", action="store_true", help="Read and count everything, write nothing.")
        parser.add_argument("--progress", action="store_true", default=None, help="Draw progress even when not on a terminal.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        try:
            conv = self._conversion(options)
        except ConversionError as err:
            raise CommandError(str(err)) from err
        chunk_size = options["chunk_size"] or None
        if chunk_size is not None and chunk_size < 1:
            raise CommandError(f"--chunk-size must be a positive number of rows, not {chunk_size}.")
        from trackable.conf import settings

        stats = ImportStats()
        progress = Progress(progress_stream(self.stderr, options["progress"]), "convert_tracking_data", "source rows")
        run = run_add if conv.mode == ADD else run_replace
        try:
            run(conv, stats, chunk_size=chunk_size or settings.IMPORT_CHUNK_LINES, dry_run=options["dry_run"], progress=progress)
        except TrackableError as err:
            raise CommandError(str(err)) from err
        finally:
            progress.done(stats)
        stats.seconds = time.monotonic() - started
        if options["json"]:
            self.stdout.write(json.dumps({"mode": conv.mode, **stats.as_dict()}, sort_keys=True))
        else:
            self.stdout.write(f"Converted {conv.source._meta.label} into {conv.dest._meta.label} (mode {conv.mode}).")
            for line in stats.summary("source rows"):
                self.stdout.write(line)

    def _conversion(self, options: dict[str, Any]) -> Conversion:
        source, dest = (self._model(options[name]) for name in ("source_model", "dest_model"))
        if not options["update_fields"]:
            raise ConversionError(
                "Give --update-fields source:dest pairs (e.g. --update-fields hits:impressions) to say which counters to copy."
            )
        bucket = options["bucket_field"]
        if options["key_fields"]:
            keys = parse_pairs(options["key_fields"], "--key-fields")
            if list(keys.values()) != ["collected_during"] or bucket:
                raise ConversionError(
                    "--key-fields only maps one source date or datetime field to collected_during (the bucket); use "
                    "--bucket-field."
                )
            bucket = next(iter(keys))
        order_by = [s.strip() for s in (options["order_by"] or "").split(",") if s.strip()]
        return Conversion(
            source=source,
            dest=dest,
            fields=parse_pairs(options["update_fields"], "--update-fields"),
            link_field=options["link_field"],
            match_spec=options["match_spec"],
            bucket_field=bucket,
            order_by=order_by,
            max_records=options["max_records"],
            mode=options["mode"],
        )

    @staticmethod
    def _model(label: str) -> Any:
        try:
            return apps.get_model(label)
        except (LookupError, ValueError) as err:
            raise ConversionError(f"Unknown model {label!r}: name it as app_label.ModelName.") from err
