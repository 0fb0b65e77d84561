"""Stream records: raw facts from the hot path, turned into Parquet tables off it.

The user appends one tuple per stream (``RAW_FIELDS``) and three flat arrays of event facts
(read time in perf_counter ns, data bytes, server send time); every event of a stream is
contiguous. :func:`to_tables` turns a batch into the documented ``streams`` and ``events``
tables with numpy, so no per-event Python work happens after the read.
"""

from __future__ import annotations

from array import array

import numpy as np
import pyarrow as pa

OUTCOMES = (
    "ok",  # completed by the scenario's completion rule
    "cutoff",  # the gateway's limit ended it: 504 before headers, or cut at the limit
    "timeout",  # a read waited longer than read_timeout_s, or the harness deadline passed
    "reset",  # the connection broke mid-stream (RST, or closed before the end of the body)
    "incomplete",  # ended cleanly without the completion event
    "event_error",  # the service sent `event: error`
    "http_error",  # any other non-200 answer
    "auth_error",  # 401/403 from the gateway's authentication
    "throttled",  # 429
    "too_large",  # body over the limit: skipped before sending, or 413 from the gateway
    "protocol_error",  # not text/event-stream, malformed HTTP, an event over max_event_bytes
    "connect_error",  # refused, DNS, TLS, connect timeout
    "cancelled",  # the run ended (or the user stopped) while the stream was open
    "harness_error",  # a bug in a locustfile or in sseload; the error says which
)

#: Order of the raw per-stream tuple built by the client.
RAW_FIELDS = (
    "stream_id", "worker", "user", "t0_perf_ns", "start_ns", "scheduled_ns", "connect_ns",
    "upload_ns", "ttfb_ns", "ttfe_ns", "duration_ns", "sign_ns", "auth_fetch_ns", "status",
    "content_type", "charset_warning", "body_bytes", "response_bytes", "events",
    "malformed_events", "outcome", "error_code", "error", "reused",
)
F = {name: i for i, name in enumerate(RAW_FIELDS)}

STREAMS_SCHEMA = pa.schema([
    ("stream_id", pa.int64()),
    ("worker", pa.int32()),
    ("user", pa.int32()),
    ("start_ns", pa.int64()),  # wall clock (time.time_ns) when the request started to go out
    ("schedule_lag_ms", pa.float64()),  # open model: actual start minus scheduled start
    ("connect_ms", pa.float64()),  # null when the connection was reused
    ("upload_ms", pa.float64()),
    ("ttfb_ms", pa.float64()),
    ("ttfe_ms", pa.float64()),
    ("duration_ms", pa.float64()),
    ("sign_us", pa.float64()),
    ("auth_fetch_ms", pa.float64()),
    ("status", pa.int32()),
    ("content_type", pa.string()),
    ("charset_warning", pa.bool_()),
    ("body_bytes", pa.int64()),
    ("response_bytes", pa.int64()),
    ("events", pa.int32()),
    ("malformed_events", pa.int32()),
    ("outcome", pa.string()),
    ("error_code", pa.string()),
    ("error", pa.string()),
    ("reused", pa.bool_()),
])

EVENTS_SCHEMA = pa.schema([
    ("stream_id", pa.int64()),
    ("seq", pa.int32()),
    ("t_ms", pa.float64()),  # since the stream's start
    ("gap_ms", pa.float64()),  # since the previous event of the stream; null for the first
    ("bytes", pa.int32()),
    ("lateness_ms", pa.float64()),  # receive time minus the server's send time; null without truth
])


class EventBuffer:
    """Flat arrays of event facts; a stream's events are appended together at its end."""

    __slots__ = ("t_ns", "size", "server_ns")

    def __init__(self) -> None:
        self.t_ns = array("q")
        self.size = array("q")
        self.server_ns = array("q")

    def __len__(self) -> int:
        return len(self.t_ns)

    def extend(self, log) -> None:
        """Append one stream's events from its sseload.sse.EventLog."""
        t_ns, size, server_ns = log.arrays()
        self.t_ns.frombytes(t_ns)
        self.size.frombytes(size)
        self.server_ns.frombytes(server_ns)


def _ms(values: np.ndarray) -> pa.Array:
    """ns -> ms, with negative values (meaning "did not happen") as null."""
    return pa.array(values / 1e6, mask=values < 0)


def to_tables(streams: list[tuple], events: EventBuffer) -> tuple[pa.Table, pa.Table]:
    n = len(streams)
    cols = list(zip(*streams)) if n else [[] for _ in RAW_FIELDS]

    def col(name: str, dtype=np.int64) -> np.ndarray:
        return np.asarray(cols[F[name]], dtype=dtype)

    start_ns = col("start_ns")
    scheduled = col("scheduled_ns")
    lag = np.where(scheduled > 0, start_ns - scheduled, -1)
    stream_table = pa.table({
        "stream_id": pa.array(col("stream_id")),
        "worker": pa.array(col("worker", np.int32)),
        "user": pa.array(col("user", np.int32)),
        "start_ns": pa.array(start_ns),
        "schedule_lag_ms": pa.array(lag / 1e6, mask=scheduled <= 0),
        "connect_ms": _ms(col("connect_ns")),
        "upload_ms": _ms(col("upload_ns")),
        "ttfb_ms": _ms(col("ttfb_ns")),
        "ttfe_ms": _ms(col("ttfe_ns")),
        "duration_ms": _ms(col("duration_ns")),
        "sign_us": pa.array(col("sign_ns") / 1e3),
        "auth_fetch_ms": pa.array(col("auth_fetch_ns") / 1e6),
        "status": pa.array(col("status", np.int32)),
        "content_type": pa.array(list(cols[F["content_type"]]), pa.string()),
        "charset_warning": pa.array(list(cols[F["charset_warning"]]), pa.bool_()),
        "body_bytes": pa.array(col("body_bytes")),
        "response_bytes": pa.array(col("response_bytes")),
        "events": pa.array(col("events", np.int32)),
        "malformed_events": pa.array(col("malformed_events", np.int32)),
        "outcome": pa.array(list(cols[F["outcome"]]), pa.string()),
        "error_code": pa.array(list(cols[F["error_code"]]), pa.string()),
        "error": pa.array(list(cols[F["error"]]), pa.string()),
        "reused": pa.array(list(cols[F["reused"]]), pa.bool_()),
    }, schema=STREAMS_SCHEMA)

    counts = col("events")
    total = int(counts.sum()) if n else 0
    if total != len(events):
        raise ValueError(f"batch has {len(events)} events but its streams count {total}")
    t_abs = np.frombuffer(events.t_ns, dtype=np.int64) if total else np.zeros(0, np.int64)
    size = np.frombuffer(events.size, dtype=np.int64) if total else np.zeros(0, np.int64)
    server = np.frombuffer(events.server_ns, dtype=np.int64) if total else np.zeros(0, np.int64)
    first = np.cumsum(counts) - counts  # index of each stream's first event
    seq = np.arange(total, dtype=np.int64) - np.repeat(first, counts)
    t_rel = t_abs - np.repeat(col("t0_perf_ns"), counts)
    gap = np.empty(total, dtype=np.float64)
    if total:
        gap[1:] = np.diff(t_rel) / 1e6
        gap[0] = np.nan
    wall = np.repeat(start_ns, counts) + t_rel
    event_table = pa.table({
        "stream_id": pa.array(np.repeat(col("stream_id"), counts)),
        "seq": pa.array(seq.astype(np.int32)),
        "t_ms": pa.array(t_rel / 1e6),
        "gap_ms": pa.array(gap, mask=seq == 0),
        "bytes": pa.array(size.astype(np.int32)),
        "lateness_ms": pa.array((wall - server) / 1e6, mask=server <= 0),
    }, schema=EVENTS_SCHEMA)
    return stream_table, event_table
