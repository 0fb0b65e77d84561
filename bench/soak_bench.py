"""Soak: many streams for a long time; does harness memory stay flat and is nothing lost?

    python bench/soak_bench.py                     # 1000 streams, 10 minutes
    python bench/soak_bench.py --users 200 --minutes 2

Prints harness RSS every 15 s; RSS growth after warm-up (the first 2 minutes, or a fifth of a
short run) as the median of the last minute's samples against the first steady minute's (single
samples swing by several MiB with batch buffers), with the least-squares slope in MiB per
minute; and streams started against streams recorded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from sseload.views import results

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=15.0, help="seconds between RSS samples")
    args = ap.parse_args()
    run_s = int(args.minutes * 60)
    with tempfile.TemporaryDirectory(prefix="sseload-soak-") as tmp:
        cmd = [sys.executable, "-m", "sseload", "run", "-u", str(args.users), "-r", str(max(1, args.users // 10)),
               "-t", f"{run_s}s", "--results-dir", tmp, "--run-id", "soak", "--no-report"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        parent = psutil.Process(proc.pid)
        started = time.monotonic()
        samples = []
        print(f"{'minute':>7}{'harness RSS MiB':>17}{'target RSS MiB':>16}", flush=True)
        while proc.poll() is None:
            time.sleep(args.every)
            locust = target = None
            for child in parent.children(recursive=True):
                try:
                    line = " ".join(child.cmdline())
                except psutil.NoSuchProcess:
                    continue
                if "locust" in line:
                    locust = child
                elif "sseload.target" in line:
                    target = child
            if locust is None:
                continue
            try:
                rss = locust.memory_info().rss / 2**20
                trss = target.memory_info().rss / 2**20 if target else float("nan")
            except psutil.NoSuchProcess:
                continue
            minute = (time.monotonic() - started) / 60
            samples.append((minute, rss))
            print(f"{minute:7.1f}{rss:17.1f}{trss:16.1f}", flush=True)
        output = proc.stdout.read()
        info = json.loads((Path(tmp) / "soak" / "run.json").read_text())
        streams = results.load(Path(tmp) / "soak", events=False).streams  # every shard
    warm = min(2.0, args.minutes / 5)
    steady = [(minute, rss) for minute, rss in samples if warm <= minute <= args.minutes]
    print()
    if len(steady) >= 4:
        t = np.array([m for m, _ in steady])
        r = np.array([x for _, x in steady])
        first = float(np.median(r[t < t[0] + 1.0]))
        last = float(np.median(r[t > t[-1] - 1.0]))
        slope = float(np.polyfit(t, r, 1)[0])
        print(f"RSS after warm-up ({warm:g} min), median of the first and last steady minute: "
              f"{first:.1f} -> {last:.1f} MiB ({(last - first) / first:+.1%}); slope {slope:+.2f} MiB/min; "
              f"single samples {r.min():.1f}-{r.max():.1f} MiB")
    else:
        print("too few samples after warm-up to judge growth; run longer")
    print(f"streams started {info['streams_started']}, recorded {info['streams_recorded']} "
          f"(lost: {info['streams_started'] - info['streams_recorded']}); rows in the streams shards: {len(streams)}")
    print(f"events recorded: {info['events_recorded']}; outcomes: {info['outcomes']}")
    print(output.strip().splitlines()[-1] if output.strip() else "")


if __name__ == "__main__":
    main()
