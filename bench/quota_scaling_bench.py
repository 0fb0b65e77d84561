"""Scaling with Locust workers where the machine has too few cores: each worker gets a core of its own, scaled down.

    python bench/quota_scaling_bench.py --workers 1 --users 600 800 1000
    python bench/quota_scaling_bench.py --workers 2 --users 1200 1600 2000
    python bench/quota_scaling_bench.py --layout separate --workers 1 --users 550 650
    python bench/quota_scaling_bench.py --layout separate --workers 2 --users 1100 1300

Issue 7 asks for 2 workers on 2 cores against 1 worker on 1 core, with the target on the same
machine. On this 2-core machine the target alone needs most of a core at 2,000 streams, so this
bench scales the question down: the reference target runs pinned to CPU 1; `sseload run -H ...
--workers W` (its master and W workers) runs pinned to CPU 0, and each worker, as soon as it
starts, is moved into a CPU cgroup of its own limited to ``--cores-per-worker`` of a core (CFS
quota with a 2.5 ms period by default, `--period-ms`, so a throttled worker stalls for about a
millisecond, not for the default 100 ms, which is longer than the 20 ms between events):
W "cores" of that size. The master stays outside the quotas, as on a machine of its own.
`--layout separate` instead pins worker i to CPU i (each still capped), with the target and the
master unpinned beside them: two workers on two physical cores. Needs root and a cgroup CPU
controller (v1 cpu or v2 cpu.max).

Workload: streams of 50 events, 200 ms to the first event, 20 ms gaps, loopback. For each point
it reports, over a steady window after the ramp: events/s, "kept up" (events/s per user against
the 50 events per 1.18 s a stream can deliver at most), TTFE error and lateness p99 against the
target's send times, the workers' CPU (in cores) and the most throttled worker's share of
periods, the master's and the target's CPU, and the run's own health verdict (`run.json`, which
knows the workers' quotas). A worker count's capacity is the largest user count that kept up
(>= 97%) with TTFE error and lateness p99 at or under 2 ms and a clean health verdict.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streams_bench import WORKLOAD, pinned, start_target, target_stats

from sseload.record.cpu_quota import CpuQuota
from sseload.views import results

ROOT = Path(__file__).resolve().parents[1]
CYCLE_S = 0.2 + 49 * 0.02  # the workload's stream: first event at 200 ms, then 49 gaps of 20 ms


class CpuCgroup:
    """A CPU cgroup capped at ``cores`` (v1 cpu controller, else v2 cpu.max); removed on exit."""

    def __init__(self, name: str, cores: float, period_us: int) -> None:
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.path = v1 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(int(cores * period_us)))
        elif "cpu" in (v2 / "cgroup.subtree_control").read_text(errors="replace").split():
            self.path = v2 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{int(cores * period_us)} {period_us}")
        else:
            raise SystemExit("no writable CPU cgroup controller here (needs root and cgroup v1 cpu or v2 cpu)")
        self.quota = CpuQuota(cores, period_us, self.path)  # sseload's own reading of its cpu.stat

    def add(self, pid: int) -> None:
        """The process, all its threads and what it starts from now on join the group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:  # its last process is still exiting
                time.sleep(0.1)


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def worker_processes(ps: psutil.Process, count: int, proc: subprocess.Popen) -> list[psutil.Process]:
    """The run's W Locust workers, as soon as `sseload run` has started them."""
    deadline = time.time() + 30
    while True:
        found = []
        for child in ps.children(recursive=True):
            try:
                if "--worker" in child.cmdline():
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
        if len(found) == count:
            return found
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"sseload run did not start {count} workers: {proc.communicate()[1][-2000:]}")
        time.sleep(0.01)


def pin_all_threads(pid: int, cpu: int) -> None:
    """taskset -a: every thread the process has now (and so every one it starts later)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, OSError):
            os.sched_setaffinity(int(task.name), {cpu})


def run_point(workers: int, users: int, cores: float, period_us: int, seconds: float, ramp_s: float,
              keep: Path | None = None, layout: str = "shared") -> dict:
    with tempfile.TemporaryDirectory(prefix="sseload-qbench-") as tmp_name:
        tmp = Path(tmp_name)
        groups = [CpuCgroup(f"sseload-bench-{os.getpid()}-w{i}", cores, period_us) for i in range(workers)]
        separate = layout == "separate"  # worker i on CPU i; the target and master anywhere
        target, url = start_target(tmp, None if separate else 1, WORKLOAD, [])
        try:
            cmd = pinned([sys.executable, "-m", "sseload", "run", "-H", url, "-u", str(users),
                          "-r", str(users / ramp_s), "-t", f"{int(ramp_s + 1 + seconds + 3)}s",
                          "--results-dir", str(tmp), "--run-id", "s", "--no-report", "--workers", str(workers)],
                         None if separate else 0)
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            ps = psutil.Process(proc.pid)
            worker_ps = worker_processes(ps, workers, proc)
            for group, worker in zip(groups, worker_ps, strict=True):
                group.add(worker.pid)
            if separate:
                for i, worker in enumerate(worker_ps):
                    pin_all_threads(worker.pid, i % os.cpu_count())
            deadline = time.time() + 120  # start-up is slow under a quota: wait for the first stream
            while target_stats(url)["streams_started"] == 0:  # (not "requests": the CLI probes first)
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"sseload run sent nothing: {proc.communicate()[1][-2000:]}")
                time.sleep(0.1)
            time.sleep(ramp_s + 1.0)  # ramp, settle
            others = [p for p in [ps, *ps.children(recursive=True)] if p.pid not in {w.pid for w in worker_ps}]
            target_stats(url, reset=True)
            w0, m0, wall0, thr0 = cpu_s(worker_ps), cpu_s(others), time.time(), [g.quota.throttled() for g in groups]
            time.sleep(seconds)
            w1, m1, wall1, thr1 = cpu_s(worker_ps), cpu_s(others), time.time(), [g.quota.throttled() for g in groups]
            tstats = target_stats(url)
            _, stderr = proc.communicate(timeout=180)
        finally:
            target.terminate()
            target.wait()
            for group in groups:
                group.remove()
        if proc.returncode not in (0, 1):
            raise SystemExit(f"sseload run failed ({proc.returncode}): {stderr[-2000:]}")
        if keep is not None:
            shutil.copytree(tmp / "s", keep / f"w{workers}-u{users}-c{cores:g}-p{period_us}", dirs_exist_ok=True)
        run = results.load(tmp / "s")
        health = run.info.get("health", {})
        streams, events = run.streams, run.events
        start = events["stream_id"].map(streams.set_index("stream_id")["start_ns"])
        recv = start.to_numpy() + events["t_ms"].to_numpy() * 1e6
        late = events["lateness_ms"].to_numpy()
        first = (events["seq"] == 0).to_numpy()
        window = (recv >= wall0 * 1e9) & (recv < wall1 * 1e9) & ~np.isnan(late)
    wall = wall1 - wall0
    eps = window.sum() / wall

    def p99(a):
        return float(np.percentile(a, 99)) if a.size else float("nan")

    throttled = [100 * (t1[1] - t0[1]) / max(1, t1[0] - t0[0]) for t0, t1 in zip(thr0, thr1, strict=True)]
    return {
        "workers": workers, "users": users, "harness_cores": workers * cores, "events_s": eps,
        "kept_up_pct": 100 * eps / (users * 50 / CYCLE_S),
        "ttfe_err_p99": p99(late[window & first]), "late_p99": p99(late[window]),
        "worker_cpu_cores": (w1 - w0) / wall, "throttled_pct": max(throttled),
        "master_cpu_pct": 100 * (m1 - m0) / wall, "target_cpu_pct": tstats["cpu_percent"],
        "health": "skewed: " + "; ".join(health.get("skew_reasons", [])) if health.get("skewed") else "clean",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores-per-worker", type=float, default=0.4)
    ap.add_argument("--period-ms", type=float, default=2.5,
                    help="the quota's CFS period: a throttled worker stalls for up to (1 - cores) of it")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--users", type=int, nargs="+", required=True, help="user counts, for each worker count")
    ap.add_argument("--seconds", type=float, default=15.0, help="measured window per point")
    ap.add_argument("--ramp", type=float, default=4.0, help="seconds to spawn all users")
    ap.add_argument("--keep", type=Path, help="copy each run's results into this directory")
    ap.add_argument("--layout", choices=["shared", "separate"], default="shared",
                    help="shared: the workers on CPU 0, the target alone on CPU 1; separate: worker i "
                         "on CPU i, the target and the master on whatever is left of both")
    args = ap.parse_args()
    if args.cores_per_worker * args.period_ms < 1.0:
        ap.error("the kernel's smallest CFS quota is 1 ms: --cores-per-worker x --period-ms must be at least 1")
    if not shutil.which("taskset"):
        raise SystemExit("taskset (util-linux) is needed to pin the harness and the target")
    print(f"{'workers':>7}{'users':>7}{'cores':>7}{'events/s':>10}{'kept up %':>10}{'TTFE err p99':>13}"
          f"{'late p99':>9}{'worker cores':>13}{'throttled %':>12}{'master CPU %':>13}{'target CPU %':>13}  health",
          flush=True)
    for workers in args.workers:
        for users in args.users:
            r = run_point(workers, users, args.cores_per_worker, int(args.period_ms * 1000), args.seconds,
                          args.ramp, args.keep, args.layout)
            print(f"{r['workers']:>7}{r['users']:>7}{r['harness_cores']:>7.2f}{r['events_s']:>10.0f}"
                  f"{r['kept_up_pct']:>10.1f}{r['ttfe_err_p99']:>13.2f}{r['late_p99']:>9.2f}"
                  f"{r['worker_cpu_cores']:>13.2f}{r['throttled_pct']:>12.1f}{r['master_cpu_pct']:>13.0f}"
                  f"{r['target_cpu_pct']:>13.0f}  {r['health']}", flush=True)


if __name__ == "__main__":
    main()
