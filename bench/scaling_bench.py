"""Scaling with Locust workers: events/s and measurement health, 1 worker against N.

    python bench/scaling_bench.py --users 1500 --workers 1 2

Each point is `sseload run` with the embedded target (streams of 50 events, 200 ms to the first
event, 20 ms gaps) on this machine: the target, the master and the workers share its cores,
unpinned. Prints events/s, lateness p99 and whether the run was flagged as skewed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, nargs="+", default=[1500])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    print(f"{'users':>6}{'workers':>8}{'events/s':>10}{'late p99 ms':>12}{'late p99.9':>11}{'loop lag p99':>13}"
          f"{'reader lag p99':>15}  skewed")
    for users in args.users:
        base = None
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "sseload", "run", "-u", str(users), "-r", str(users // 4),
                       "-t", f"{args.seconds}s", "--results-dir", tmp, "--run-id", "s", "--no-report",
                       "--workers", str(workers)]
                subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
                from sseload.views import results

                run = results.load(Path(tmp) / "s")
                summary = results.summarise(run)
                info = json.loads((Path(tmp) / "s" / "run.json").read_text())
            eps = summary["events_per_s"]
            base = base or eps
            health = info.get("health", {})
            late = summary.get("lateness_ms", {})
            print(f"{users:>6}{workers:>8}{eps:>10.0f}{late.get('p99') or 0:>12.2f}{late.get('p99.9') or 0:>11.2f}"
                  f"{health.get('loop_lag_p99_ms') or 0:>13.2f}{health.get('reader_lag_p99_ms') or 0:>15.2f}"
                  f"  {health.get('skewed')}  ({eps / base:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
