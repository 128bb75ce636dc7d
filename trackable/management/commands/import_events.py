"""manage.py import_events CSV [CSV ...]: count the events of a CSV event log (timestamp, object, field, amount)."""
from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import CommandError, CommandParser

from trackable.eventlog import EventImporter
from trackable.management.base import ImportCommand
from trackable.sites import site


class Command(ImportCommand):
    help = (
        "Count the events of CSV files whose header names timestamp, object (app_label.Model:pk), field and "
        "optionally amount, each in the bucket of its own timestamp. Importing the same file again adds nothing."
    )
    kind = "csv"
    identity_lines = 2  # the header and the first record

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--model", metavar="app_label.Model", help="The parent model: the object column holds only its pk.")
        parser.add_argument("--field", help="The counter field of every record, when the CSV has no field column.")

    def handle(self, *args: Any, **options: Any) -> None:
        model = self._model(options["model"]) if options["model"] else None

        def feed(writer, lines, progress):
            header = next(lines, b"").decode("utf-8", "replace")
            EventImporter(writer, header, model=model, field=options["field"]).run(lines, progress)

        self.import_paths(options, feed)

    @staticmethod
    def _model(label: str) -> Any:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError) as err:
            raise CommandError(f"Unknown model {label!r}: name it as app_label.ModelName.") from err
        if not site.is_registered(model):
            raise CommandError(f"{model._meta.label} is not registered with trackable; --model names a parent model.")
        return model
