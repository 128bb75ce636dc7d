"""Benchmark import_access_log: lines/s against a parse-only loop over the same lines, and peak memory.

Run from the repository root:  PYTHONPATH=. python bench/bench_import.py [--lines 1000000] [--repeat 3]

It writes a generated combined log (articles, players, static files, 404s, POSTs, broken lines, thirty
days of timestamps) to a temporary folder, then, in fresh subprocesses on a fresh SQLite database:

* baseline: a plain Python loop that reads the file and parses each line (the import's regex, status,
  request split, timestamp) and does nothing else;
* import: manage.py import_access_log on the same file (resolve, filter, bucket, aggregate, upsert,
  ledger), from a new database each run.

Each prints one JSON line: the median rate of both, their ratio, and the peak RSS (resource.getrusage)
of an import of a tenth of the lines and of all of them, whose ratio shows that memory stays flat.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "Mozilla/5.0 (iPhone) Safari/604.1", "curl/8.0"]


def generate(path: Path, lines: int, seed: int = 1, uniform: bool = False) -> None:
    """Write a combined log of `lines` lines over thirty days; article popularity is Zipf-like unless uniform."""
    rnd = random.Random(seed)

    def article() -> int:
        return rnd.randint(1, 5000) if uniform else min(5000, int(rnd.paretovariate(0.6)))

    start = 1_767_225_600  # 2026-01-01T00:00:00Z
    step = 30 * 86400 / lines
    months = ["Jan", "Feb"]
    with path.open("w") as f:
        for i in range(lines):
            t = time.gmtime(start + int(i * step))
            ts = f"{t.tm_mday:02d}/{months[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
            r = rnd.random()
            status, method = 200, "GET"
            if r < 0.60:
                target = f"/articles/{article()}/"
            elif r < 0.70:
                target = f"/players/p{rnd.randint(1, 500)}/"
            elif r < 0.85:
                target = rnd.choice(["/static/site.css", "/static/app.js", "/favicon.ico", "/media/a.png"])
            elif r < 0.92:
                target, status = f"/articles/{article()}/", 404
            elif r < 0.97:
                target, method = "/articles/1/", "POST"
            elif r < 0.999:
                target = "/about/?ref=x"
            else:
                f.write("garbage line\n")
                continue
            f.write(f'198.51.100.{i % 250} - - [{ts}] "{method} {target} HTTP/1.1" {status} 1234 "-" "{rnd.choice(AGENTS)}"\n')


def setup_django(db_path: str) -> None:
    """Configure a minimal project with the test models and the import URLconf on a new SQLite file."""
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                        "django.contrib.sessions", "django.contrib.messages", "trackable", "tests.testapp", "tests.legacyapp"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
        ROOT_URLCONF="tests.importurls",
        USE_TZ=True,
        TIME_ZONE="UTC",
        STATIC_URL="/static/",
        MEDIA_URL="/media/",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        TRACKABLE_IMPORT_URLS={"article": "testapp.Article.impressions"},
        TRACKABLE_BROKER_URL="memory://",
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def child_parse(path: str, db_path: str) -> dict:
    """Parse every line the way the importer does, and nothing more."""
    setup_django(db_path)  # only to import the parser; not timed
    from trackable.accesslog import LINE, parse_time

    started = time.perf_counter()
    n = parsed = 0
    with open(path, "rb") as f:
        for line in f:
            n += 1
            m = LINE.match(line)
            if m is None:
                continue
            int(m[4])
            m[3].split(b" ")
            parse_time(m[2])
            parsed += 1
    seconds = time.perf_counter() - started
    return {"lines": n, "parsed": parsed, "seconds": seconds}


def child_import(path: str, db_path: str) -> dict:
    """Run manage.py import_access_log on a fresh database."""
    setup_django(db_path)
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    started = time.perf_counter()
    call_command("import_access_log", path, "--json", stdout=out)
    seconds = time.perf_counter() - started
    summary = json.loads(out.getvalue())
    return {"lines": summary["lines"], "events": summary["events"], "seconds": seconds}


def run_child(*args: str) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")])),
    )
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"bench child {args[0]} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--uniform", action="store_true", help="Every article equally popular (more distinct rows).")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = child_parse(*rest) if kind == "parse" else child_import(*rest)
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "access.log", Path(tmp) / "access-small.log"
        generate(big, args.lines, uniform=args.uniform)
        generate(small, args.lines // 10, uniform=args.uniform)
        parse_rates, import_rates, rss = [], [], []
        for i in range(args.repeat):
            parsed = run_child("parse", str(big), str(Path(tmp) / f"parse-{i}.sqlite3"))
            imported = run_child("import", str(big), str(Path(tmp) / f"db-{i}.sqlite3"))
            parse_rates.append(parsed["lines"] / parsed["seconds"])
            import_rates.append(imported["lines"] / imported["seconds"])
            rss.append(imported["peak_rss_mib"])
        small_run = run_child("import", str(small), str(Path(tmp) / "db-small.sqlite3"))
    parse_rate, import_rate = statistics.median(parse_rates), statistics.median(import_rates)
    print(
        json.dumps(
            {
                "figure": f"import_access_log lines/s (SQLite, {'uniform' if args.uniform else 'Zipf'} popularity)",
                "value": round(import_rate),
                "baseline": "parse-only loop lines/s",
                "baseline_value": round(parse_rate),
                "ratio": round(import_rate / parse_rate, 3),
                "lines": args.lines,
                "events": imported["events"],
                "runs": args.repeat,
            }
        )
    )
    print(json.dumps({
        "figure": "peak RSS MiB of the import", "value": statistics.median(rss), "lines": args.lines,
        "baseline": f"peak RSS MiB importing {args.lines // 10} lines", "baseline_value": small_run["peak_rss_mib"],
        "ratio": round(statistics.median(rss) / small_run["peak_rss_mib"], 3),
    }))


if __name__ == "__main__":
    main()
