"""What the pipeline is doing: queue depths, dead letters, backlog age, last folds, ledger sizes.

`collect_status()` returns plain JSON-ready facts for `manage.py trackable_status`, the admin and
monitoring; `record_fold_run()` is called once at the end of every process_messages().
"""
from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections, models, router, transaction
from django.db.models import Count, Sum
from django.utils import timezone as dj_timezone
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url

from trackable import journal, messages, transport
from trackable.conf import settings
from trackable.exceptions import MalformedMessage
from trackable.models import FoldedMessage, FoldRun, ImportedChunk
from trackable.sites import site

__all__ = ["collect_status", "record_fold_run", "queue_depths", "journal_status", "unmigrated_error"]

logger = logging.getLogger("trackable")

NOT_KNOWABLE = {
    "amqp": "AMQP cannot show a queued message without taking it off the queue",
}


def record_fold_run(result: Any) -> None:
    """Record a finished fold (a FoldResult) and forget runs older than TRACKABLE_LEDGER_RETENTION.

    A run that found nothing to fold, after another such run, only moves that run's time forward, so a
    ``--loop`` folding every second does not write a row per second while the site is quiet.
    """
    now = dj_timezone.now()
    db = router.db_for_write(FoldRun)
    counts = {name: int(getattr(result, name, 0)) for name in ("messages", "events", "rows", "duplicates", "malformed")}
    try:
        with transaction.atomic(using=db):
            last = FoldRun.objects.using(db).order_by("-finished_at").first()
            if not any(counts.values()) and last is not None and not (last.messages or last.duplicates or last.malformed):
                FoldRun.objects.using(db).filter(pk=last.pk).update(finished_at=now)
            else:
                FoldRun.objects.using(db).create(finished_at=now, seconds=float(getattr(result, "seconds", 0.0)), **counts)
            cutoff = now - timedelta(seconds=settings.LEDGER_RETENTION)
            FoldRun.objects.using(db).filter(finished_at__lt=cutoff).delete()
    except DatabaseError as err:  # the fold itself is committed and acked; only its record is lost
        logger.warning("Could not record the trackable fold run: %s", unmigrated_error(err) or err)


def queue_depths(conn: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return ([{data_model, queue, messages, oldest_event_age}], dead-letter {queue, messages}) from the broker."""
    now_ms = int(time.time() * 1000)
    channel = conn.channel()
    rows = []
    try:
        for dm in site.data_models():
            label = dm._meta.label_lower
            queue = transport.queue_for(label)
            count, channel = _depth(conn, channel, queue)
            oldest = _oldest_event_ms(channel, queue.name) if count else None
            rows.append({
                "data_model": label,
                "queue": queue.name,
                "messages": count,
                "oldest_event_age": None if oldest is None else round((now_ms - oldest) / 1000, 3),
            })
        dead = transport.dead_letter_queue()
        count, channel = _depth(conn, channel, dead)
        return rows, {"queue": dead.name, "messages": count}
    finally:
        channel.close()


def _depth(conn: Any, channel: Any, queue: Any) -> tuple[int, Any]:
    """Return (messages in `queue`, a usable channel), declaring nothing: a queue never declared holds 0."""
    try:
        _, count, _ = queue(channel).queue_declare(passive=True)
        return int(count), channel
    except conn.channel_errors:
        # AMQP closes a channel on a passive declare of a missing queue; Redis has no key for an empty one.
        try:
            channel.close()
        except conn.channel_errors + conn.connection_errors:
            pass
        return 0, conn.channel()


def _oldest_event_ms(channel: Any, queue: str) -> int | None:
    """Return the event time of the oldest queued event, where the broker can show it without consuming."""
    envelope: bytes | str | None = None
    driver = channel.connection.client.transport.driver_type
    if driver == "redis":
        envelope = channel.client.lindex(queue, -1)  # kombu pushes on the left and pops on the right
    elif driver == "filesystem":
        envelope = _oldest_file(channel.data_folder_in, queue)
    if not envelope:
        return None
    try:
        payload = json.loads(envelope)
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return min(event.ts_ms for event in messages.parse(body).events)
    except (ValueError, KeyError, TypeError, RecursionError, MalformedMessage):
        return None


def _oldest_file(folder: str, queue: str) -> bytes | None:
    from trackable.fsqueue import envelope_limit, read_message_file

    suffix = f".{queue}.msg"
    names = sorted(n for n in os.listdir(folder) if n.endswith(suffix) and n[0] != ".")
    for name in names[:5]:  # a consumer may claim the first ones while we look
        try:  # a link or a FIFO named like a message is never followed nor waited for
            return read_message_file(os.path.join(folder, name), envelope_limit())
        except OSError:
            continue
    return None


def _fold_facts(now: Any) -> dict[str, Any]:
    last = FoldRun.objects.order_by("-finished_at").first()
    hour = FoldRun.objects.filter(finished_at__gte=now - timedelta(hours=1)).aggregate(
        runs=Count("id"), events=Sum("events"), messages=Sum("messages"), seconds=Sum("seconds")
    )
    facts: dict[str, Any] = {"last_fold": None}
    if last is not None:
        facts["last_fold"] = {
            "finished_at": last.finished_at.isoformat(),
            "age_seconds": round((now - last.finished_at).total_seconds(), 3),
            "seconds": round(last.seconds, 3),
            "messages": last.messages,
            "events": last.events,
            "rows": last.rows,
            "duplicates": last.duplicates,
            "malformed": last.malformed,
            "events_per_second": round(last.events / last.seconds, 1) if last.seconds else None,
        }
    seconds = hour["seconds"] or 0.0
    facts["folds_last_hour"] = {
        "runs": hour["runs"] or 0,
        "messages": hour["messages"] or 0,
        "events": hour["events"] or 0,
        "events_per_second_folding": round((hour["events"] or 0) / seconds, 1) if seconds else None,
    }
    return facts


def unmigrated_error(err: Exception) -> str | None:
    """Return a sentence naming `migrate` when `err` came from tables trackable needs that do not exist."""
    from django.contrib.contenttypes.models import ContentType

    needed: list[type[models.Model]] = [ContentType, FoldedMessage, FoldRun, *site.data_models()]
    missing: list[str] = []
    try:
        for alias in sorted({router.db_for_write(model) for model in needed}):
            existing = set(connections[alias].introspection.table_names())
            missing += [m._meta.db_table for m in needed if router.db_for_write(m) == alias and m._meta.db_table not in existing]
    except DatabaseError:
        return None
    if not missing:
        return None
    tables = ", ".join(missing)
    return f"{err} The database has no table {tables} yet: run `python manage.py migrate` first."


def _shown_url(url: str) -> str:
    """Return the broker URL as the user configured it, its password masked."""
    return maybe_sanitize_url(url) if "@" in url else url


STATUS_READ_BYTES = 8 * 1024 * 1024  # unrelayed bytes read per segment to count its events


def describe_journal(folder: Path) -> dict[str, Any]:
    """Return the journal's backlog (events, bytes, oldest unrelayed age), its live and orphaned segments."""
    facts: dict[str, Any] = {"segments": 0, "orphan_segments": 0, "backlog_bytes": 0, "backlog_events": 0}
    facts.update(backlog_events_exact=True, oldest_unrelayed_age=None)
    oldest: int | None = None
    for name, info in journal.scan(folder):
        facts["segments"] += 1
        try:
            done = journal.load_state(folder / f"{name[: -len(journal.SEGMENT_SUFFIX)]}{journal.STATE_SUFFIX}").done
        except journal.JournalDamaged:
            done = 0
        facts["backlog_bytes"] += max(0, info.st_size - done)
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_NONBLOCK | journal.OPEN_FLAGS)
        except OSError:
            continue
        try:
            if _is_orphan(fd):
                facts["orphan_segments"] += 1
            events, end, _ = journal.read_records(fd, done, STATUS_READ_BYTES)
        finally:
            os.close(fd)
        facts["backlog_events"] += len(events)
        if end < info.st_size and info.st_size - done > STATUS_READ_BYTES:
            facts["backlog_events_exact"] = False
        first = min((e[5] for e in events if isinstance(e[5], int)), default=None)
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    if oldest is not None:
        facts["oldest_unrelayed_age"] = round(max(0.0, time.time() - oldest / 1000), 3)
    facts["damaged_files"] = journal.damaged_count(folder)
    facts["refused_events"] = journal.refused_count(folder)
    facts["left_out_breakdown_events"] = journal.logged_events(folder, journal.LEFT_OUT_LOG)
    return facts


def _is_orphan(fd: int) -> bool:
    """Return whether nobody holds the segment's lock (its process is gone); let go of it at once."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def journal_status() -> dict[str, Any]:
    """Return the producer's mode and, with the journal, its backlog, orphans, damaged files and refusals."""
    if not settings.JOURNAL:
        return {"mode": "direct", "folder": None}
    folder = settings.journal_dir
    facts: dict[str, Any] = {"mode": "journal", "folder": str(folder) if folder else None}
    if folder is not None:
        facts.update(describe_journal(folder))
    return facts


def collect_status(*, broker: bool = True) -> dict[str, Any]:
    """Return the state of the pipeline as a JSON-ready dict (broker facts are None if it is unreachable)."""
    now = dj_timezone.now()
    status: dict[str, Any] = {"time": now.isoformat(), "broker": None, "broker_error": None}
    status["journal"] = journal_status()
    status["queues"], status["dead_letters"] = [], None
    if broker:
        conn = transport.connection()
        status["broker"] = _shown_url(settings.broker_url)
        unreachable: tuple[type[BaseException], ...] = (OSError, OperationalError, *conn.connection_errors, *conn.channel_errors)
        try:
            conn.ensure_connection(max_retries=1, timeout=settings.CONNECT_TIMEOUT)
            status["queues"], status["dead_letters"] = queue_depths(conn)
        except unreachable as err:
            status["broker_error"] = f"{type(err).__name__}: {err}"
        finally:
            conn.release()
    depths = [q["messages"] for q in status["queues"]]
    ages = [q["oldest_event_age"] for q in status["queues"] if q["oldest_event_age"] is not None]
    status["queued_messages"] = sum(depths) if status["queues"] else None
    status["oldest_unfolded_age"] = max(ages) if ages else None
    scheme = status["broker"].split(":", 1)[0] if status["broker"] else ""
    status["oldest_unfolded_note"] = NOT_KNOWABLE.get(scheme) if status["queued_messages"] else None
    status.update(_fold_facts(now))
    status["ledger"] = {"folded_messages": FoldedMessage.objects.count(), "retention_seconds": settings.LEDGER_RETENTION}
    status["import_ledger"] = {"chunks": ImportedChunk.objects.count()}
    status["set_aside_files"] = _set_aside_files()
    return status


def _set_aside_files() -> int | None:
    """Return the entries of the filesystem:// queue set aside in its corrupt/ folder (None on other brokers)."""
    if not settings.broker_url.startswith("filesystem:"):
        return None
    from trackable.fsqueue import set_aside_count

    return set_aside_count(settings.queue_dir)
