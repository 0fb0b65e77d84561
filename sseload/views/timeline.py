"""When a run's streams were open, on the wall clock: each stream's end, how many were open at a
moment (:class:`OpenStreams`, the one count of concurrency) and the run's time buckets (seconds
since its first stream started), which the summary's throughput, the charts and the events' facts
(sseload.views.event_facts) all count in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def stream_ends_ns(streams: pd.DataFrame) -> pd.Series:
    """Each stream's end on the wall clock (its start plus its duration; a stream without one ends at once)."""
    return streams["start_ns"] + streams["duration_ms"].fillna(0) * 1e6


class OpenStreams:
    """How many streams were open at each wall-clock time: started at or before it, not yet ended.

    The throughput chart's active streams and the latency by concurrency charts (a stream counts
    itself at its own start) both come from here; the streams are sorted once, then asked often."""

    def __init__(self, streams: pd.DataFrame) -> None:
        self.starts = np.sort(streams["start_ns"].to_numpy())
        self.ends = np.sort(stream_ends_ns(streams).to_numpy())

    def at(self, at_ns: np.ndarray | pd.Series | float) -> np.ndarray:
        at = np.asarray(at_ns)
        return np.searchsorted(self.starts, at, side="right") - np.searchsorted(self.ends, at, side="right")


def active_streams_at(streams: pd.DataFrame, at_ns: np.ndarray | pd.Series | float) -> np.ndarray:
    """How many streams were open at each wall-clock time ``at_ns`` (:class:`OpenStreams`)."""
    return OpenStreams(streams).at(at_ns)


def buckets(streams: pd.DataFrame, bucket_s: float = 1.0) -> tuple[int, np.ndarray]:
    """The run's time buckets: (its first stream's start, ns; the buckets' edges in seconds since
    then, from 0 to the bucket after the last stream's end). No streams: one bucket from 0."""
    if streams.empty:
        return 0, np.array([0.0, bucket_s])
    t0 = streams["start_ns"].min()
    end_s = (stream_ends_ns(streams) - t0) / 1e9
    n = int(np.ceil(end_s.max() / bucket_s)) + 1
    return t0, np.arange(n + 1) * bucket_s
