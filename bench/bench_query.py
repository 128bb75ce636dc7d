"""Benchmark the query API on PostgreSQL with over a million rows; print JSON lines with ratios.

    python bench/bench_query.py [--parents 120] [--runs 30] [--keep]

Creates the database ``trackable_bench`` (dropped at the end unless --keep), fills the hourly data
model of the test project with one year of hourly rows for each parent (120 parents: 1,051,200 rows)
with ``generate_series``, then times, as medians over --runs:

* ``series``: one parent's year of hourly rows rolled up to 365 Paris days (query.series), against a
  raw ``SELECT count(*)`` of the same rows and the hand-written ``date_trunc ... GROUP BY`` SQL;
* ``top``: the top 10 parents over a month (query.top and query.top_objects), against a raw
  ``SELECT count(*)`` of the month's rows and the hand-written ``GROUP BY ... ORDER BY ... LIMIT`` SQL;

first with the indexes every data model has, then again with the covering index docs/query.rst
recommends for big tables (``INCLUDE`` the counters, so PostgreSQL answers from the index alone).

Environment: TRACKABLE_BENCH_PG_HOST (127.0.0.1), TRACKABLE_BENCH_PG_PORT (5432), TRACKABLE_BENCH_PG_USER
(postgres).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DB_NAME = "trackable_bench"
PG = {
    "HOST": os.environ.get("TRACKABLE_BENCH_PG_HOST", "127.0.0.1"),
    "PORT": os.environ.get("TRACKABLE_BENCH_PG_PORT", "5432"),
    "USER": os.environ.get("TRACKABLE_BENCH_PG_USER", "postgres"),
}
ZONE = "Europe/Paris"
YEAR_START = datetime(2025, 1, 1, tzinfo=ZoneInfo(ZONE))
YEAR_END = datetime(2026, 1, 1, tzinfo=ZoneInfo(ZONE))
MONTH_START = datetime(2025, 6, 1, tzinfo=ZoneInfo(ZONE))
MONTH_END = datetime(2025, 7, 1, tzinfo=ZoneInfo(ZONE))


def configure() -> None:
    """Configure Django for the bench database (no broker is touched)."""
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "trackable",
            "tests.testapp",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": DB_NAME, **PG}},
        USE_TZ=True,
        TIME_ZONE=ZONE,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        TRACKABLE_BROKER_URL="memory://",
        SECRET_KEY="bench-only",
    )
    django.setup()


def admin_sql(statement: str) -> None:
    """Run `statement` on the maintenance database (CREATE/DROP DATABASE)."""
    import psycopg

    with psycopg.connect(dbname="postgres", host=PG["HOST"], port=PG["PORT"], user=PG["USER"], autocommit=True) as conn:
        conn.execute(statement)


def fill(parents: int) -> int:
    """Create `parents` articles and one year of hourly rows for each; return the row count."""
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connection

    from tests.testapp.models import Article, ArticleHourlyData

    call_command("migrate", verbosity=0)
    Article.objects.bulk_create(Article(title=f"Article {i}") for i in range(parents))
    ct = ContentType.objects.get_for_model(Article)
    table = ArticleHourlyData._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (content_type_id, object_id, collected_during, reads)
                SELECT %s, a.id, ts, (a.id * 7 + EXTRACT(HOUR FROM ts)::int) %% 23
                FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 hour', interval '1 hour') AS ts
                CROSS JOIN testapp_article AS a""",
            [ct.pk, YEAR_START, YEAR_END],
        )
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def medians_ms(runs: int, *fns) -> list[float]:
    """Return the median wall time in ms of each of `fns`, timed interleaved so load drift hits all alike."""
    for fn in fns:
        fn()
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, bucket in zip(fns, times, strict=False):
            started = time.perf_counter()
            fn()
            bucket.append((time.perf_counter() - started) * 1000)
    return [statistics.median(t) for t in times]


def raw(sql: str, params: list):
    """Return a function running `sql` with `params` on Django's connection and fetching every row."""
    from django.db import connection

    def run():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    return run


def emit(name: str, figure: float, baseline_name: str, baseline: float, target: float, **extra) -> None:
    print(json.dumps({"bench": name, "median_ms": round(figure, 3), "baseline": baseline_name,
                      "baseline_median_ms": round(baseline, 3), "ratio": round(figure / baseline, 2),
                      "target_ms": target, "meets_target": figure <= target, **extra}), flush=True)


COVERING_INDEX = "CREATE INDEX bench_series_cover ON {table} (content_type_id, object_id, collected_during) INCLUDE (reads)"


def run(parents: int, runs: int) -> None:
    from django.db import connection

    from tests.testapp.models import ArticleHourlyData

    rows = fill(parents)
    table = ArticleHourlyData._meta.db_table
    measure(parents, runs, rows, "default indexes")
    with connection.cursor() as cursor:
        cursor.execute(COVERING_INDEX.format(table=table))
        cursor.execute(f"VACUUM ANALYZE {table}")
    measure(parents, runs, rows, "default indexes + covering index (docs/query.rst)")


def measure(parents: int, runs: int, rows: int, indexes: str) -> None:
    from django.contrib.contenttypes.models import ContentType

    from tests.testapp.models import Article, ArticleHourlyData
    from trackable import query

    table = ArticleHourlyData._meta.db_table
    ct = ContentType.objects.get_for_model(Article).pk
    article = Article.objects.order_by("pk")[parents // 2]
    common = {"rows_in_table": rows, "runs": runs, "indexes": indexes}

    points = query.series(article, "reads", YEAR_START, YEAR_END, granularity="day")
    assert len(points) == 365, len(points)
    window = [ct, article.pk, YEAR_START, YEAR_END]
    where = f"FROM {table} WHERE content_type_id = %s AND object_id = %s AND collected_during >= %s AND collected_during < %s"
    series, count, hand = medians_ms(
        runs,
        lambda: query.series(article, "reads", YEAR_START, YEAR_END, granularity="day"),
        raw(f"SELECT count(*) {where}", window),
        raw(f"SELECT date_trunc('day', collected_during AT TIME ZONE %s), sum(reads) {where} GROUP BY 1", [ZONE, *window]),
    )
    emit("series_1y_hourly_to_days", series, "raw SELECT count(*) of the same 8760 rows", count, 10, **common)
    emit("series_1y_hourly_to_days", series, "hand-written date_trunc GROUP BY", hand, 10, **common)

    assert len(query.top(Article, "reads", MONTH_START, MONTH_END)) == 10
    month = [ct, MONTH_START, MONTH_END]
    where = f"FROM {table} WHERE content_type_id = %s AND collected_during >= %s AND collected_during < %s"
    top, top_objects, count, hand = medians_ms(
        runs,
        lambda: query.top(Article, "reads", MONTH_START, MONTH_END, n=10),
        lambda: query.top_objects(Article, "reads", MONTH_START, MONTH_END, n=10),
        raw(f"SELECT count(*) {where}", month),
        raw(f"SELECT object_id, sum(reads) AS t {where} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10", month),
    )
    month_rows = raw(f"SELECT count(*) {where}", month)()[0][0]
    emit("top10_month", top, f"raw SELECT count(*) of the same {month_rows} rows", count, 100, **common)
    emit("top10_month", top, "hand-written GROUP BY ORDER BY LIMIT", hand, 100, **common)
    emit("top10_month_objects", top_objects, "hand-written GROUP BY ORDER BY LIMIT", hand, 100, **common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parents", type=int, default=120, help="articles, each with 8760 hourly rows")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per figure (median reported)")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DB_NAME} database afterwards")
    args = parser.parse_args()
    admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME}")
    admin_sql(f"CREATE DATABASE {DB_NAME}")
    configure()
    try:
        run(args.parents, args.runs)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME}")


if __name__ == "__main__":
    main()
