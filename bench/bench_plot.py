"""Draw docs/_static/performance.png: fold rate per batch size, and request-path cost per broker.

    python bench/bench_plot.py                      # runs the benches it needs (a few minutes)
    python bench/bench_plot.py --from results.jsonl # plots JSON lines saved from earlier runs

Needs matplotlib (``pip install -e .[bench]``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "docs" / "_static" / "performance.png"
BROKERS = ("amqp", "redis")
SWEEP = "10,50,100,250,500,1000,2000"


def run(script: str, *args: str) -> list[dict]:
    """Run a bench script and return the JSON lines it printed."""
    out = subprocess.run([sys.executable, str(HERE / script), *args], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def measure(runs: int) -> list[dict]:
    """Run the sweep and the publish bench on both brokers; return every figure."""
    lines: list[dict] = []
    for broker in BROKERS:
        messages = "4000" if broker == "redis" else "10000"
        lines += run("bench_fold.py", "--broker", broker, "--runs", str(runs), "--sweep", SWEEP, "--messages", messages)
        lines += run("bench_publish.py", "--broker", broker, "--runs", str(runs))
    return lines


def plot(lines: list[dict], out: Path) -> None:
    """Draw the two panels from the figures in `lines` into `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for broker, color in zip(BROKERS, ("tab:orange", "tab:red"), strict=False):
        sweep = sorted((row for row in lines if row["figure"] == "P2 fold per batch size" and row["broker"] == broker),
                       key=lambda row: row["batch_size"])
        if sweep:
            sizes = [row["batch_size"] for row in sweep]
            left.plot(sizes, [row["value"] for row in sweep], "o-", color=color, label=f"fold into PostgreSQL, {broker}")
            left.plot(sizes, [row["baseline_value"] for row in sweep], "--", color=color, alpha=0.6,
                      label=f"raw kombu drain, {broker}")
    left.set(xscale="log", yscale="log", xlabel="batch size (messages)", ylabel="events/s (one event per message)",
             title="Fold throughput vs batch size")
    left.legend(fontsize=8)

    bars = [("P1 send_increment_message per call", "value", "send_increment_message"),
            ("P1 send_increment_message per call", "baseline_value", "bare kombu publish"),
            ("P1 buffered send_increment_message per event", "value", "buffered send")]
    width = 0.25
    for i, (figure, key, label) in enumerate(bars):
        values = [next((row[key] for row in lines if row["figure"] == figure and row["broker"] == b), 0) for b in BROKERS]
        xs = [j + (i - 1) * width for j in range(len(BROKERS))]
        right.bar(xs, values, width, label=label)
        for x, v in zip(xs, values, strict=False):
            right.annotate(f"{v:.0f}" if v >= 10 else f"{v:.1f}", (x, v), ha="center", va="bottom", fontsize=8)
    right.set(xticks=range(len(BROKERS)), xticklabels=BROKERS, yscale="log", ylabel="µs per event (median)",
              title="Request-path cost per broker")
    right.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", type=Path, help="JSON lines to plot instead of measuring")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    if args.source:
        lines = [json.loads(line) for line in args.source.read_text().splitlines() if line.startswith("{")]
    else:
        lines = measure(args.runs)
    for line in lines:
        print(json.dumps(line))
    plot(lines, args.out)


if __name__ == "__main__":
    main()
