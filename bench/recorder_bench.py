"""The recorder's cost per event: a run's batches turned into Parquet by `ParquetSink`, as the writer thread does.

    python bench/recorder_bench.py                      # 2,000 streams' worth a second, 20 seconds
    python bench/recorder_bench.py --events-per-s 84000 --seconds 30

Builds one-second batches like those of issue 7's workload at 2,000 streams (50 events per
stream, 20 ms apart, each some ms late as a busy target sends them, lateness of a few µs) and
writes them through `sseload.record.sink.ParquetSink` (`to_tables` plus the Parquet writer), once
with the events file's dictionary encoding as shipped (`EVENTS_DICTIONARY_COLUMNS`) and once with
Parquet's default (a dictionary for every column). Prints CPU ns per event and bytes per event
on disk, best of three for each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sseload.record import sink as recorder
from sseload.record.records import EventBuffer, StreamRecord

PER_STREAM = 50


def batches(events_per_s: int, seconds: int) -> list[tuple[list[tuple], EventBuffer]]:
    rng = np.random.default_rng(7)
    streams_per_s = events_per_s // PER_STREAM
    out, stream_id = [], 0
    for second in range(seconds):
        streams, ev = [], EventBuffer()
        for _ in range(streams_per_s):
            stream_id += 1
            t0 = second * 1_000_000_000 + int(rng.integers(0, 1_000_000_000))
            # as measured at 2,000 streams: events some ms after their schedule (a busy target),
            # nearly every time distinct; lateness of a few µs, some thousands of distinct values
            late_sent = rng.exponential(10e6, PER_STREAM).astype(np.int64)
            times = t0 + 200_000_000 + np.arange(PER_STREAM) * 20_000_000 + late_sent
            ev.t_ns.frombytes(times.astype(np.int64).tobytes())
            ev.size.frombytes(np.full(PER_STREAM, 115, np.int64).tobytes())
            sent = 1_795_000_000_000_000_000 + times - 3_000 - rng.exponential(1_500, PER_STREAM).astype(np.int64)
            ev.server_ns.frombytes(sent.astype(np.int64).tobytes())
            fields = {**dict.fromkeys(StreamRecord._fields, 0), **StreamRecord._field_defaults}
            fields.update(stream_id=stream_id, t0_perf_ns=t0, start_ns=1_795_000_000_000_000_000 + t0,
                          ttfe_ns=200_000_000, duration_ns=1_180_000_000, status=200,
                          content_type="text/event-stream;charset=UTF-8", charset_warning=False,
                          events=PER_STREAM, outcome="ok", error_code="", error="", reused=True)
            streams.append(StreamRecord(**fields))
        out.append((streams, ev))
    return out


def measure(data: list, dictionary) -> tuple[float, float]:
    recorder.EVENTS_DICTIONARY_COLUMNS = dictionary
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            sink = recorder.ParquetSink(Path(tmp))
            c0 = time.process_time()
            for streams, ev in data:
                sink(streams, ev)
            sink.close()
            best = min(best, time.process_time() - c0)
            size = sum(p.stat().st_size for p in Path(tmp).glob("events*.parquet"))
    n = sum(len(ev) for _, ev in data)
    return 1e9 * best / n, size / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events-per-s", type=int, default=84_000)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    data = batches(args.events_per_s, args.seconds)
    shipped = recorder.EVENTS_DICTIONARY_COLUMNS
    print(f"{sum(len(ev) for _, ev in data):,} events in {len(data)} one-second batches")
    print(f"{'events file dictionaries':40s} {'CPU ns/event':>12s} {'bytes/event':>12s}")
    for label, dictionary in ((f"shipped: {', '.join(shipped)}", shipped), ("every column (Parquet's default)", True)):
        ns, size = measure(data, dictionary)
        print(f"{label:40s} {ns:12.0f} {size:12.1f}")
    recorder.EVENTS_DICTIONARY_COLUMNS = shipped


if __name__ == "__main__":
    main()
