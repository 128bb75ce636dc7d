"""Benchmark the memory of import_access_log on hostile logs: this tree against a git ref, same run.

Run from the repository root:  PYTHONPATH=. python bench/bench_import_memory.py [--baseline-ref main] [--repeat 1]

Cases (each written once to a temporary folder):

* long-line: a 300 KB gzip holding one 300 MiB line between two ordinary lines;
* long-paths: 300 distinct request paths of 1 MiB each (gzip);
* wide-paths: 300 distinct request paths of 60 KiB each (under the line limit, so resolved and cached).

Each import runs in a fresh subprocess (SQLite, --dry-run) whose peak RSS (resource.getrusage) and wall
time are printed as JSON lines (each child's address space capped by --cap-mib: a baseline that hits the
cap is reported at the cap, with "baseline_failed"), for the baseline tree (`git archive` of --baseline-ref) and for this
tree, rounds interleaved; medians are quoted with the ratio this/baseline.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = '203.0.113.9 - - [10/Jan/2026:10:15:00 +0000] "GET {path} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11)"\n'


def write_cases(folder: Path) -> dict[str, Path]:
    cases = {
        "long-line": folder / "long-line.log.gz",
        "long-paths": folder / "long-paths.log.gz",
        "wide-paths": folder / "wide.log.gz",
    }
    with gzip.open(cases["long-line"], "wb", compresslevel=6) as f:
        f.write(LINE.format(path="/articles/1/").encode())
        f.write(b'203.0.113.9 - - [10/Jan/2026:10:15:00 +0000] "GET /articles/')
        block = b"1" * (1 << 20)
        for _ in range(300):
            f.write(block)
        f.write(b'/ HTTP/1.1" 200 5 "-" "x"\n')
        f.write(LINE.format(path="/articles/1/").encode())
    for name, size in (("long-paths", 1 << 20), ("wide-paths", 60 << 10)):
        with gzip.open(cases[name], "wb", compresslevel=6) as f:
            for i in range(300):
                f.write(LINE.format(path=f"/articles/{i + 1}/?" + chr(97 + i % 26) * size).encode())
    return cases


def child(path: str, db_path: str) -> dict:
    from bench.bench_import import setup_django

    setup_django(db_path)
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    started = time.perf_counter()
    call_command("import_access_log", path, "--json", "--dry-run", stdout=out)
    summary = json.loads(out.getvalue())
    return {"seconds": round(time.perf_counter() - started, 2), "lines": summary["lines"], "events": summary["events"],
            "skipped": summary["skipped"]}


def run_child(tree: Path, path: Path, db: Path, cap_mib: int) -> dict:
    """Run one import in a subprocess whose address space is capped (a runaway baseline must not take the host)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cap = cap_mib << 20

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(path), str(db)],
                          capture_output=True, text=True, env=env, cwd=str(tree), preexec_fn=limit)
    if proc.returncode:
        if "MemoryError" in proc.stderr or proc.returncode < 0:
            return {
                "peak_rss_mib": float(cap_mib),
                "seconds": round(time.perf_counter() - started, 2),
                "failed": "MemoryError at the cap",
                "events": None,
                "skipped": None,
            }
        raise SystemExit(f"bench child failed in {tree} (rc {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--cap-mib", type=int, default=3072, help="Address-space cap of each import (MiB).")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(*args.child)
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline_ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        cases = write_cases(Path(tmp))
        for name, path in cases.items():
            runs: dict[str, list[dict]] = {"baseline": [], "this": []}
            for i in range(args.repeat):  # interleaved rounds
                for label, tree in (("baseline", base), ("this", ROOT)):
                    runs[label].append(run_child(tree, path, Path(tmp) / f"{name}-{label}-{i}.sqlite3", args.cap_mib))
            rss = {k: statistics.median(r["peak_rss_mib"] for r in v) for k, v in runs.items()}
            secs = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
            print(json.dumps({
                "figure": f"peak RSS MiB, import_access_log --dry-run, {name} ({path.stat().st_size // 1024} KiB gzip)",
                "value": rss["this"], "baseline": f"same at {args.baseline_ref}", "baseline_value": rss["baseline"],
                "ratio": round(rss["this"] / rss["baseline"], 3), "seconds": secs["this"], "baseline_seconds": secs["baseline"],
                "skipped": runs["this"][-1]["skipped"], "events": runs["this"][-1]["events"],
                "baseline_events": runs["baseline"][-1]["events"], "runs": args.repeat,
                "baseline_failed": runs["baseline"][-1].get("failed"), "cap_mib": args.cap_mib,
            }))


if __name__ == "__main__":
    main()
