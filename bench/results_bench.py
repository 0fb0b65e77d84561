"""Loading and summarising a large run: time and peak memory of `results.load` + `summarise`.

    python bench/results_bench.py --events 10000000

Writes a synthetic run (the real schema, 50 events per stream, realistic value spreads) to a
temporary folder, then loads and summarises it in a fresh process and reports wall time and
peak RSS (the goal: 10 million events in under 60 s and 4 GB). The summary reads the events a
batch at a time (sseload.views.event_facts); `sseload report` as a whole: report_bench.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import sseload
from sseload.record.records import EVENTS_SCHEMA, STREAMS_SCHEMA


def _table(columns: dict, schema: pa.Schema) -> pa.Table:
    """``columns`` as the schema types them; the schema's other columns null."""
    n = len(next(iter(columns.values())))
    return pa.Table.from_arrays([pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type)
                                 for f in schema], schema=schema)


def write_run(run_dir: Path, n_events: int, per_stream: int = 50) -> None:
    rng = np.random.default_rng(1)
    n_streams = n_events // per_stream
    start = 1_795_000_000_000_000_000 + np.sort(rng.integers(0, 600_000_000_000, n_streams))
    ttfe = rng.lognormal(np.log(200), 0.2, n_streams)
    streams = _table({
        "stream_id": np.arange(n_streams, dtype=np.int64), "worker": np.zeros(n_streams, np.int32),
        "user": rng.integers(0, 1000, n_streams).astype(np.int32), "start_ns": start,
        "schedule_lag_ms": pa.nulls(n_streams, pa.float64()), "connect_ms": pa.nulls(n_streams, pa.float64()),
        "upload_ms": np.full(n_streams, 0.01), "ttfb_ms": np.full(n_streams, 1.0), "ttfe_ms": ttfe,
        "duration_ms": ttfe + 20 * per_stream, "sign_us": np.full(n_streams, 5.0), "auth_fetch_ms": np.zeros(n_streams),
        "status": np.full(n_streams, 200, np.int32), "content_type": ["text/event-stream;charset=UTF-8"] * n_streams,
        "charset_warning": np.zeros(n_streams, bool), "body_bytes": np.full(n_streams, 85),
        "response_bytes": np.full(n_streams, 7000), "events": np.full(n_streams, per_stream, np.int32),
        "malformed_events": np.zeros(n_streams, np.int32),
        "outcome": np.where(rng.random(n_streams) < 0.01, "reset", "ok").tolist(),
        "error_code": [""] * n_streams, "error": [""] * n_streams, "reused": np.ones(n_streams, bool),
    }, STREAMS_SCHEMA)
    pq.write_table(streams, run_dir / "streams.parquet", compression="zstd")
    with pq.ParquetWriter(run_dir / "events.parquet", EVENTS_SCHEMA, compression="zstd") as writer:
        step = 20_000  # streams per row group
        for a in range(0, n_streams, step):
            n = min(step, n_streams - a) * per_stream
            seq = np.tile(np.arange(per_stream, dtype=np.int32), n // per_stream)
            gap = rng.normal(20, 1, n)
            t = np.repeat(ttfe[a:a + n // per_stream], per_stream) + seq * 20.0
            writer.write_table(_table({
                "stream_id": np.repeat(np.arange(a, a + n // per_stream, dtype=np.int64), per_stream),
                "seq": seq, "t_ms": t, "gap_ms": pa.array(gap, mask=seq == 0),
                "bytes": np.full(n, 114, np.int32), "lateness_ms": rng.exponential(0.3, n),
            }, EVENTS_SCHEMA))
    (run_dir / "run.json").write_text(json.dumps({"schema_version": sseload.SCHEMA_VERSION, "run_id": "big"}))


def measure(run_dir: str) -> None:
    from sseload.views import results

    t = time.perf_counter()
    run = results.load(run_dir)
    loaded = time.perf_counter() - t
    summary = results.summarise(run)
    total = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"events": summary["events"], "load_s": loaded, "load_and_summarise_s": total,
                      "peak_rss_gib": peak, "ttfe_p99": summary["ttfe_ms"]["p99"]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        return measure(args.measure)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_run(Path(tmp), args.events)
        print(f"wrote {args.events:,} events in {time.perf_counter() - t:.1f} s "
              f"({sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20:.0f} MiB on disk)")
        out = subprocess.run([sys.executable, __file__, "--measure", tmp], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        print(f"load: {r['load_s']:.1f} s; load + summarise: {r['load_and_summarise_s']:.1f} s; "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB ({r['events']:,} events)")


if __name__ == "__main__":
    main()
