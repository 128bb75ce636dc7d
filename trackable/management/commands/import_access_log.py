"""manage.py import_access_log LOG [LOG ...]: count the requests of an Apache or Nginx access log."""
from __future__ import annotations

import importlib
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from trackable.accesslog import LineFilter, LogImporter, get_resolver, parse_status_spec
from trackable.conf import settings
from trackable.management.base import ImportCommand


class Command(ImportCommand):
    help = (
        "Count the requests of Apache/Nginx combined access logs (plain, gzip, or - for stdin) into trackable "
        "data models, each in the bucket of its own timestamp. Importing the same log again adds nothing."
    )
    kind = "log"

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--status", default="2xx", help="Status codes or classes counted, e.g. 2xx,304 (default 2xx).")
        parser.add_argument("--methods", default="GET", help="Request methods counted, comma separated (default GET).")
        parser.add_argument(
            "--include-static", action="store_true", help="Count static files (STATIC_URL, MEDIA_URL, .css, .js, ...)."
        )
        spiders = parser.add_mutually_exclusive_group()
        spiders.add_argument("--skip-spiders", dest="spiders", action="store_const", const=True, default=None,
                             help="Leave out spiders (default: when TRACKABLE_USER_AGENT_FILTERING is on).")
        spiders.add_argument("--keep-spiders", dest="spiders", action="store_const", const=False, help="Count spiders too.")

    def handle(self, *args: Any, **options: Any) -> None:
        line_filter = self._filter(options)
        try:
            resolver = get_resolver()
        except ImproperlyConfigured as err:
            raise CommandError(str(err)) from err
        self.import_paths(
            options, lambda writer, lines, progress: LogImporter(writer, line_filter, resolver).run(lines, progress)
        )

    def _filter(self, options: dict[str, Any]) -> LineFilter:
        try:
            status = parse_status_spec(options["status"])
        except ValueError as err:
            raise CommandError(str(err)) from err
        methods = frozenset(m.strip().upper().encode() for m in options["methods"].split(",") if m.strip())
        if not methods:
            raise CommandError("--methods is empty; give request methods like GET,HEAD.")
        skip_spiders = settings.USER_AGENT_FILTERING if options["spiders"] is None else options["spiders"]
        return LineFilter(methods, status, options["include_static"], _spider_test() if skip_spiders else None)


def _spider_test() -> Any:
    """Return the spider test of this import: the Spider rows loaded now, before the first line, and kept.

    Loading synchronously (whatever TRACKABLE_SPIDER_REFRESH_INTERVAL says, 0 included) makes the
    verdicts the same from run to run; no background reload changes them during the import.
    """
    try:
        spiders = importlib.import_module("trackable.spiders")
        is_spider = spiders.is_spider
    except (ImportError, AttributeError) as err:
        raise CommandError(
            "Spider filtering needs trackable.spiders.is_spider, which cannot be imported here "
            f"({err}); run with --keep-spiders, or turn TRACKABLE_USER_AGENT_FILTERING off."
        ) from err
    frozen = getattr(spiders, "frozen_test", None)
    return frozen() if frozen is not None else is_spider
