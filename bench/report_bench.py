"""`sseload report` on a large run: wall time and peak memory of the report process.

    python bench/report_bench.py                       # 100,000,000 events (about 2.2 GB of disk, minutes)
    python bench/report_bench.py --events 2000000      # a quick check
    python bench/report_bench.py --llm --keep /tmp/big # OpenAI-style streams (ITL, tokens); keep the folder

Writes a synthetic run folder (the real schema; ``--events-per-stream`` events a stream, 20 ms
apart with some read together; ``--concurrency`` streams open at a time) as the recorder lays it
out (sseload.record's ParquetSink: ``streams.parquet``/``events.parquet``, then ``-2``, ``-3``...,
row groups of ROW_GROUP_EVENTS events, a shard every ROW_GROUPS_PER_SHARD row groups, zstd,
dictionaries on the columns whose values repeat), generated a million events at a time so the
generator stays small. Then runs ``python -m sseload report`` on it in a subprocess and prints a
table: events, streams, wall seconds, peak RSS of the report process (its ``ru_maxrss``) and the
sizes on disk. The goal (issue 32): 100 M events within 4 GB, the summary's percentiles exact.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
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
from sseload.record.sink import EVENTS_DICTIONARY_COLUMNS, ParquetSink

T0_NS = 1_795_000_000_000_000_000
GAP_MS = 20.0
CHUNK_EVENTS = 1_000_000  # events generated at a time


def _table(schema: pa.Schema, columns: dict) -> pa.Table:
    """``columns`` in the schema's order and types; the schema's other columns null."""
    n = len(next(iter(columns.values())))
    return pa.Table.from_arrays([pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type)
                                 for f in schema], schema=schema)


def _streams(ids: np.ndarray, per_stream: int, concurrency: int, llm: bool, rng: np.random.Generator) -> pa.Table:
    n = ids.size
    duration_s = per_stream * GAP_MS / 1e3
    start = T0_NS + (ids // concurrency * duration_s * 1e9 + ids % concurrency * duration_s * 1e9 / concurrency)
    ttfe = rng.lognormal(np.log(200), 0.2, n)
    columns = {
        "stream_id": ids, "worker": np.zeros(n, np.int32), "user": (ids % concurrency).astype(np.int32),
        "start_ns": start.astype(np.int64), "upload_ms": np.full(n, 0.01), "ttfb_ms": ttfe * 0.9, "ttfe_ms": ttfe,
        "duration_ms": ttfe + GAP_MS * (per_stream - 1) + 1, "sign_us": np.full(n, 5.0),
        "auth_fetch_ms": np.zeros(n), "status": np.full(n, 200, np.int32),
        "content_type": ["text/event-stream"] * n, "charset_warning": np.zeros(n, bool),
        "body_bytes": np.full(n, 85), "response_bytes": np.full(n, 120 * per_stream),
        "events": np.full(n, per_stream, np.int32), "malformed_events": np.zeros(n, np.int32),
        "outcome": np.where(rng.random(n) < 0.01, "reset", "ok").tolist(), "error_code": [""] * n,
        "error": [""] * n, "reused": np.ones(n, bool),
    }
    if llm:
        columns |= {"ttft_ms": ttfe, "output_tokens": np.full(n, per_stream - 2, np.int32),
                    "tokens_from": ["usage"] * n, "tpot_ms": np.full(n, GAP_MS),
                    "tokens_per_s": np.full(n, 1e3 / GAP_MS), "finish_reason": ["stop"] * n}
    return _table(STREAMS_SCHEMA, {k: v for k, v in columns.items() if k in STREAMS_SCHEMA.names})


def _events(ids: np.ndarray, ttfe: np.ndarray, per_stream: int, llm: bool, rng: np.random.Generator) -> pa.Table:
    n = ids.size * per_stream
    seq = np.tile(np.arange(per_stream, dtype=np.int32), ids.size)
    gap = np.maximum(rng.normal(GAP_MS, 1.0, n), 0) * (rng.random(n) > 0.02)  # some read together
    gap[seq == 0] = 0
    t = np.repeat(ttfe, per_stream) + np.cumsum(gap.reshape(ids.size, per_stream), axis=1).reshape(-1)
    columns = {"stream_id": np.repeat(ids, per_stream), "seq": seq, "t_ms": t, "gap_ms": pa.array(gap, mask=seq == 0),
               "bytes": np.full(n, 114, np.int32), "lateness_ms": rng.exponential(0.3, n)}
    if llm:  # a role chunk, then output chunks of a token each, then the usage chunk
        output = (seq > 0) & (seq < per_stream - 1)
        columns |= {"output": output, "answer": output, "tokens": output.astype(np.int32)}
    return _table(EVENTS_SCHEMA, columns)


def write_run(run_dir: Path, n_events: int, per_stream: int, concurrency: int, llm: bool) -> int:
    """The run folder, shard after shard as ParquetSink writes them; returns the streams written."""
    rng = np.random.default_rng(1)
    n_streams = max(1, n_events // per_stream)
    group, per_shard = ParquetSink.ROW_GROUP_EVENTS, ParquetSink.ROW_GROUP_EVENTS * ParquetSink.ROW_GROUPS_PER_SHARD
    shard, in_shard, events_out, streams_out = 0, per_shard, None, None

    def path(stem: str) -> Path:
        return run_dir / f"{stem}{'' if shard == 1 else f'-{shard}'}.parquet"

    step = max(1, CHUNK_EVENTS // per_stream)
    for first in range(0, n_streams, step):
        if in_shard >= per_shard:  # the shard holds its row groups: the next one opens
            for writer in (events_out, streams_out):
                if writer is not None:
                    writer.close()
            shard, in_shard = shard + 1, 0
            events_out = pq.ParquetWriter(path("events"), EVENTS_SCHEMA, compression="zstd",
                                          use_dictionary=EVENTS_DICTIONARY_COLUMNS)
            streams_out = pq.ParquetWriter(path("streams"), STREAMS_SCHEMA, compression="zstd")
        ids = np.arange(first, min(first + step, n_streams), dtype=np.int64)
        streams = _streams(ids, per_stream, concurrency, llm, rng)
        streams_out.write_table(streams, row_group_size=ParquetSink.ROW_GROUP_STREAMS)
        events = _events(ids, streams.column("ttfe_ms").to_numpy(), per_stream, llm, rng)
        events_out.write_table(events, row_group_size=group)
        in_shard += events.num_rows
    for writer in (events_out, streams_out):
        writer.close()
    (run_dir / "run.json").write_text(json.dumps({
        "schema_version": sseload.SCHEMA_VERSION, "run_id": "report-bench", "users": concurrency,
        "scenario": {"name": "report-bench", "gateway": {"limit_s": 3600}}}))
    return n_streams


def _size(run_dir: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in run_dir.glob(pattern))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000_000)
    ap.add_argument("--events-per-stream", type=int, default=1_000)
    ap.add_argument("--concurrency", type=int, default=1_000, help="streams open at a time")
    ap.add_argument("--llm", action="store_true", help="OpenAI-style streams: output chunks and their tokens")
    ap.add_argument("--keep", type=Path, help="write the run here and keep it (default: a temporary folder)")
    args = ap.parse_args()
    run_dir = args.keep or Path(tempfile.mkdtemp(prefix="report-bench-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        n_streams = write_run(run_dir, args.events, args.events_per_stream, args.concurrency, args.llm)
        print(f"wrote {args.events:,} events of {n_streams:,} streams in {time.perf_counter() - t:.1f} s to {run_dir}",
              flush=True)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "sseload", "report", str(run_dir)], capture_output=True,
                              text=True)
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(f"sseload report failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**10  # KiB -> MiB (the report, the only child)
        summary = json.loads((run_dir / "summary.json").read_text())
        rows = [("events", f"{summary['events']:,}"), ("streams", f"{summary['streams']:,}"),
                ("wall (s)", f"{wall:.1f}"), ("peak RSS (MiB)", f"{peak:,.0f}"),
                ("events*.parquet (MiB)", f"{_size(run_dir, 'events*.parquet') / 2**20:,.0f}"),
                ("streams*.parquet (MiB)", f"{_size(run_dir, 'streams*.parquet') / 2**20:,.1f}"),
                ("report.html (MiB)", f"{_size(run_dir, 'report.html') / 2**20:,.1f}"),
                ("gap p50 / p99 (ms)", f"{summary['gap_ms']['p50']:.3f} / {summary['gap_ms']['p99']:.3f}")]
        if args.llm:
            rows.append(("ITL p99 (ms)", f"{summary['itl_ms']['p99']:.3f}"))
        print("| " + " | ".join(k for k, _ in rows) + " |\n|" + "---:|" * len(rows) + "\n| "
              + " | ".join(v for _, v in rows) + " |")
    finally:
        if args.keep is None:
            shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
