"""Shared plumbing of the benchmarks: a throw-away PostgreSQL database, queue purging, JSON output."""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def setup(broker: str) -> None:
    """Configure Django for the bench settings on `broker`, create the bench database and migrate it."""
    os.environ["TRACKABLE_BENCH_BROKER"] = broker
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    name = settings.DATABASES["default"]["NAME"]
    if os.environ.get("TRACKABLE_BENCH_CHILD"):
        return  # a worker process of a bench: the parent made (and drops) the database
    _admin_sql(f'CREATE DATABASE "{name}"')
    atexit.register(_drop, name)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _admin_sql(sql: str) -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def _drop(name: str) -> None:
    from django.conf import settings
    from django.db import connections

    connections.close_all()
    purge_queues(delete=True)
    _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    folder = getattr(settings, "TRACKABLE_QUEUE_DIR", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def purge_queues(delete: bool = False) -> None:
    """Empty every queue of this bench run (and delete them at the end of the run)."""
    from trackable import transport
    from trackable.sites import site

    conn = transport.connection()
    try:
        channel = conn.channel()
        for dm in site.data_models():
            queue = transport.queue_for(dm._meta.label_lower)(channel)
            queue.declare()
            queue.delete() if delete else queue.purge()
        channel.close()
    finally:
        conn.release()


def emit(figure: str, value: float, unit: str, baseline: str, baseline_value: float, **extra: Any) -> dict:
    """Print one figure as a JSON line with its baseline and their ratio; return it."""
    line = {
        "figure": figure,
        "value": round(value, 3),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": round(baseline_value, 3),
        "ratio": round(value / baseline_value, 3) if baseline_value else None,
        "load_1m": round(os.getloadavg()[0], 2),  # the machine's load when the figure was taken
        **extra,
    }
    print(json.dumps(line), flush=True)
    return line


def median_of(runs: int, fn: Callable[[], float]) -> float:
    """Return the median of `runs` calls of `fn`."""
    return statistics.median(fn() for _ in range(runs))


def parser(description: str) -> argparse.ArgumentParser:
    """Return an argument parser with the options every bench shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--broker", choices=["amqp", "redis", "filesystem"], default="amqp")
    p.add_argument("--runs", type=int, default=5, help="repetitions; medians are reported")
    return p
