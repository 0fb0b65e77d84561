"""The harness watching itself: event-loop lag and CPU, so a skewed measurement says so.

A greenlet asks to sleep ``interval_s`` and records how late it woke: that lateness is what
every stream's read timestamps suffer too. CPU comes from the process's own times.
"""

from __future__ import annotations

import time
from array import array
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sseload.reactor import reader_info

LAG_P99_LIMIT_MS = 5.0
CPU_LIMIT_PERCENT = 90.0


class HealthMonitor:
    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.lag_ns = array("q")  # 8 bytes a sample: a soak keeps them all
        self.seconds: list[tuple] = []  # (wall s, cpu %, active streams, lag max ms)
        self._greenlet = None

    def start(self, active_streams) -> None:
        import gevent

        self._greenlet = gevent.spawn(self._run, active_streams)

    def _run(self, active_streams) -> None:
        import gevent

        interval_ns = int(self.interval_s * 1e9)
        last_cpu, last_wall = time.process_time(), time.monotonic()
        window_max = 0
        while True:
            t = time.perf_counter_ns()
            gevent.sleep(self.interval_s)
            lag = time.perf_counter_ns() - t - interval_ns
            self.lag_ns.append(lag)
            window_max = max(window_max, lag)
            wall = time.monotonic()
            if wall - last_wall >= 1.0:
                cpu = time.process_time()
                self.seconds.append((time.time(), 100.0 * (cpu - last_cpu) / (wall - last_wall),
                                     active_streams(), window_max / 1e6))
                last_cpu, last_wall, window_max = cpu, wall, 0

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def summary(self) -> dict:
        lag = np.frombuffer(self.lag_ns, dtype=np.int64).astype(np.float64) / 1e6
        cpu = np.asarray([s[1] for s in self.seconds], dtype=np.float64)
        out = {
            "loop_lag_p50_ms": float(np.percentile(lag, 50)) if lag.size else None,
            "loop_lag_p99_ms": float(np.percentile(lag, 99)) if lag.size else None,
            "loop_lag_max_ms": float(lag.max()) if lag.size else None,
            "cpu_mean_percent": float(cpu.mean()) if cpu.size else None,
            "cpu_max_percent": float(cpu.max()) if cpu.size else None,
            "samples": int(lag.size),
        }
        reasons = []
        if out["loop_lag_p99_ms"] is not None and out["loop_lag_p99_ms"] > LAG_P99_LIMIT_MS:
            reasons.append(f"event-loop lag p99 {out['loop_lag_p99_ms']:.1f} ms > {LAG_P99_LIMIT_MS:g} ms")
        if out["cpu_max_percent"] is not None and out["cpu_max_percent"] > CPU_LIMIT_PERCENT:
            reasons.append(f"harness CPU reached {out['cpu_max_percent']:.0f}% > {CPU_LIMIT_PERCENT:g}%")
        out["skewed"] = bool(reasons)
        out["skew_reasons"] = reasons
        out.update(reader_info())
        return out

    def write(self, path: Path, worker: int = 0) -> None:
        self.write_rows([(worker, *row) for row in self.seconds], path)

    @staticmethod
    def write_rows(rows: list[tuple], path: Path) -> None:
        """Rows of (worker, time s, cpu %, active streams, worst loop lag ms)."""
        table = pa.table({
            "worker": pa.array([r[0] for r in rows], pa.int32()),
            "time_s": pa.array([r[1] for r in rows], pa.float64()),
            "cpu_percent": pa.array([r[2] for r in rows], pa.float64()),
            "active_streams": pa.array([r[3] for r in rows], pa.int64()),
            "loop_lag_max_ms": pa.array([r[4] for r in rows], pa.float64()),
        })
        pq.write_table(table, path)
