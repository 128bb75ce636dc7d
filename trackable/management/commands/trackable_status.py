"""manage.py trackable_status: queue depths, dead letters, backlog age, last folds, ledger sizes."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from trackable.status import collect_status, unmigrated_error


class Command(BaseCommand):
    help = "Show the state of the django-trackable pipeline; exits with status 1 when the broker is unreachable."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the facts as one JSON object (for monitoring).")
        parser.add_argument("--no-broker", action="store_true", help="Only the database facts; do not connect to the broker.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            status = collect_status(broker=not options["no_broker"])
        except DatabaseError as err:
            raise CommandError(unmigrated_error(err) or f"Could not read the trackable status: {err}") from err
        if options["json"]:
            self.stdout.write(json.dumps(status, sort_keys=True))
        else:
            for line in describe(status):
                self.stdout.write(line)
        if status["broker_error"]:
            raise CommandError(f"The trackable broker is unreachable: {status['broker_error']}")


def describe(status: dict[str, Any]) -> list[str]:
    """Return the status as lines of text."""
    out = describe_journal(status["journal"])
    out.append(f"Broker: {status['broker'] or 'not asked'}")
    for q in status["queues"]:
        age = "" if q["oldest_event_age"] is None else f", oldest event {q['oldest_event_age']:.0f}s old"
        out.append(f"  {q['data_model']}: {q['messages']} queued messages{age}")
    if status["dead_letters"] is not None:
        out.append(f"  dead letters ({status['dead_letters']['queue']}): {status['dead_letters']['messages']}")
    if status.get("set_aside_files"):
        out.append(f"  set aside (not messages: links, FIFOs, corrupt files): {status['set_aside_files']} in corrupt/")
    if status["oldest_unfolded_note"]:
        out.append(f"  oldest unfolded event: unknown ({status['oldest_unfolded_note']})")
    last = status["last_fold"]
    if last is None:
        out.append("Last fold: none recorded")
    else:
        rate = "" if last["events_per_second"] is None else f", {last['events_per_second']:.0f} events/s"
        out.append(
            f"Last fold: {last['finished_at']} ({last['age_seconds']:.0f}s ago): {last['events']} events from "
            f"{last['messages']} messages in {last['seconds']:.2f}s{rate}"
        )
    hour = status["folds_last_hour"]
    out.append(f"Last hour: {hour['runs']} folds, {hour['events']} events from {hour['messages']} messages")
    out.append(
        f"Ledger: {status['ledger']['folded_messages']} folded message ids, {status['import_ledger']['chunks']} imported chunks"
    )
    return out


def describe_journal(facts: dict[str, Any]) -> list[str]:
    """Return the producer's mode and journal backlog as lines of text."""
    if facts["mode"] == "direct":
        return ["Sending: direct publish from the request (TRACKABLE_JOURNAL = False)"]
    out = [f"Sending: through the journal in {facts['folder']}"]
    if "segments" not in facts:
        return out
    age = "" if facts["oldest_unrelayed_age"] is None else f", oldest {facts['oldest_unrelayed_age']:.0f}s old"
    approx = "" if facts["backlog_events_exact"] else "at least "
    out.append(
        f"  backlog: {approx}{facts['backlog_events']} events in {facts['backlog_bytes']} bytes{age}; "
        f"{facts['segments']} segments, {facts['orphan_segments']} orphaned"
    )
    out.append(
        f"  refused (over TRACKABLE_JOURNAL_MAX_BYTES): {facts['refused_events']} events; damaged files set aside: "
        f"{facts['damaged_files']}"
    )
    if facts.get("left_out_breakdown_events"):
        out.append(
            f"  breakdown events the relay could not compute (see the log): {facts['left_out_breakdown_events']}"
        )
    return out
