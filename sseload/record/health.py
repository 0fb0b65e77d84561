"""The harness watching itself: event-loop lag, the reader thread's lag and CPU, so a skewed
measurement says so.

The lag that decides is that of the loop taking the timestamps (the native reader's thread
when it ran, else the event loop); CPU is judged against one core or the process's CPU quota
(sseload.record.cpu_quota). What each number means and why these limits: docs/measurement.md
("Harness health").
"""

from __future__ import annotations

import time
from array import array
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sseload.record.cpu_quota import CpuQuota, cpu_quota
from sseload.transport.tuning import Tuning

LAG_P99_LIMIT_MS = 5.0
CPU_LIMIT_PERCENT = 90.0  # of one core, or of the CPU quota where that is less
_DETECT = object()


def _ms(samples_ns: array) -> np.ndarray:
    return np.frombuffer(samples_ns, dtype=np.int64).astype(np.float64) / 1e6


def _pct(values: np.ndarray, p: float) -> float | None:
    return float(np.percentile(values, p)) if values.size else None


class HealthMonitor:
    def __init__(self, interval_s: float = 0.05, quota: CpuQuota | None = _DETECT,
                 tuning: Tuning | None = None) -> None:
        self.interval_s = interval_s
        self.tuning = tuning or Tuning.from_env()
        self.quota = cpu_quota() if quota is _DETECT else quota  # a container's CPU limit
        self._throttled_start = (0, 0)
        self.lag_ns = array("q")  # 8 bytes a sample: a soak keeps them all
        self.reader_lag_ns = array("q")  # the native reader thread's own, sampled by itself
        self.seconds: list[tuple] = []  # (wall s, cpu %, active streams, lag max ms)
        self._greenlet = None

    def start(self, active_streams) -> None:
        import gevent

        self.mark_start()
        self._greenlet = gevent.spawn(self._run, active_streams)

    def mark_start(self) -> None:
        """The quota's throttling counts from here (the load's start), not from the process's."""
        if self.quota is not None:
            self._throttled_start = self.quota.throttled()

    def _run(self, active_streams) -> None:
        import gevent

        from sseload.transport.reactor import take_reader_lags

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
                self.reader_lag_ns.frombytes(take_reader_lags())
                cpu = time.process_time()
                self.seconds.append((time.time(), 100.0 * (cpu - last_cpu) / (wall - last_wall),
                                     active_streams(), window_max / 1e6))
                last_cpu, last_wall, window_max = cpu, wall, 0

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def summary(self) -> dict:
        from sseload.transport.reactor import reader_info, take_reader_lags

        self.reader_lag_ns.frombytes(take_reader_lags())
        lag = _ms(self.lag_ns)
        reader_lag = _ms(self.reader_lag_ns)
        cpu = np.asarray([s[1] for s in self.seconds], dtype=np.float64)
        out = {
            "loop_lag_p50_ms": _pct(lag, 50),
            "loop_lag_p99_ms": _pct(lag, 99),
            "loop_lag_max_ms": float(lag.max()) if lag.size else None,
            "reader_lag_p50_ms": _pct(reader_lag, 50),
            "reader_lag_p99_ms": _pct(reader_lag, 99),
            "reader_lag_max_ms": float(reader_lag.max()) if reader_lag.size else None,
            "cpu_mean_percent": float(cpu.mean()) if cpu.size else None,
            "cpu_max_percent": float(cpu.max()) if cpu.size else None,
            "samples": int(lag.size),
        }
        quota = self.quota
        out["cpu_quota_cores"] = quota.cores if quota is not None else None
        out["cpu_throttled_percent"] = None
        if quota is not None:
            (p0, t0), (p1, t1) = self._throttled_start, quota.throttled()
            out["cpu_throttled_percent"] = 100.0 * (t1 - t0) / (p1 - p0) if p1 > p0 else 0.0
        out.update(reader_info())
        out["parser"] = self.tuning.parser
        reasons = []
        # The lag that matters is that of the loop taking the timestamps: the native reader's
        # thread when it ran, else the event loop (whose lag then delays only starts and parsing).
        if reader_lag.size:
            if out["reader_lag_p99_ms"] > LAG_P99_LIMIT_MS:
                reasons.append(f"reader thread lag p99 {out['reader_lag_p99_ms']:.1f} ms > {LAG_P99_LIMIT_MS:g} ms")
        elif out["loop_lag_p99_ms"] is not None and out["loop_lag_p99_ms"] > LAG_P99_LIMIT_MS:
            reasons.append(f"event-loop lag p99 {out['loop_lag_p99_ms']:.1f} ms > {LAG_P99_LIMIT_MS:g} ms")
        cpu_limit = CPU_LIMIT_PERCENT * min(1.0, quota.cores if quota is not None else 1.0)
        if out["cpu_max_percent"] is not None and out["cpu_max_percent"] > cpu_limit:
            of_quota = (f" ({CPU_LIMIT_PERCENT:g}% of its {quota.cores:g}-core CPU quota)"
                        if cpu_limit < CPU_LIMIT_PERCENT else "")
            reasons.append(f"harness CPU reached {out['cpu_max_percent']:.0f}% > {cpu_limit:g}%{of_quota}")
        out["skewed"] = bool(reasons)
        out["skew_reasons"] = reasons
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


def merge_summaries(summaries: list[dict]) -> dict:
    """The run's health is its worst worker's: one skewed worker skews the whole measurement."""
    if not summaries:
        return {}

    def worst(key: str):
        values = [s[key] for s in summaries if s.get(key) is not None]
        return max(values) if values else None

    merged = {key: worst(key) for key in ("loop_lag_p50_ms", "loop_lag_p99_ms", "loop_lag_max_ms",
                                          "reader_lag_p50_ms", "reader_lag_p99_ms", "reader_lag_max_ms",
                                          "cpu_mean_percent", "cpu_max_percent", "cpu_throttled_percent")}
    quotas = [s["cpu_quota_cores"] for s in summaries if s.get("cpu_quota_cores") is not None]
    merged["cpu_quota_cores"] = min(quotas) if quotas else None  # the tightest worker's
    merged["samples"] = sum(s.get("samples", 0) for s in summaries)
    merged["reader"] = ",".join(sorted({s.get("reader", "?") for s in summaries}))
    merged["parser"] = ",".join(sorted({s.get("parser", "?") for s in summaries}))
    for key in ("reader_reads", "reader_stamped", "reader_wakeups", "reader_stepped",
                "reader_tls_reads"):  # native reader counts
        if any(key in s for s in summaries):
            merged[key] = sum(s.get(key, 0) for s in summaries)
    merged["reader_nice"] = worst("reader_nice")  # the least favoured worker's reader thread
    merged["reader_window_ms"] = worst("reader_window_ms")
    routes = [s["reader_routes_body"] for s in summaries if "reader_routes_body" in s]
    if routes:  # whether every worker's reader fed the bodies' logs itself
        merged["reader_routes_body"] = all(routes)
    in_c = [s["reader_tls_in_c"] for s in summaries if "reader_tls_in_c" in s]
    if in_c:  # whether every worker that read TLS decrypted it in C, and why not where not
        merged["reader_tls_in_c"] = all(in_c)
        whys = sorted({s["reader_tls_in_c_why"] for s in summaries if s.get("reader_tls_in_c_why")})
        if whys:
            merged["reader_tls_in_c_why"] = "; ".join(whys)
    merged["skew_reasons"] = [f"worker {i}: {r}" for i, s in enumerate(summaries) for r in s.get("skew_reasons", [])]
    merged["skewed"] = bool(merged["skew_reasons"])
    return merged
