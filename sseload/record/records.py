"""Stream records: raw facts from the hot path, turned into Parquet tables off it.

The user appends one :class:`StreamRecord` per stream and three flat arrays of event facts
(read time in perf_counter ns, data bytes, server send time); every event of a stream is
contiguous. :func:`to_tables` turns a batch into the documented ``streams`` and ``events``
tables with numpy, so no per-event Python work happens after the read.
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from sseload.protocol.llm import unpack
from sseload.protocol.outcomes import Outcome


class StreamRecord(NamedTuple):
    """One stream's raw facts, as the client records them (perf_counter ns; -1: did not happen).

    Built once per stream on the hot path (a NamedTuple costs what a tuple does) and turned
    into the ``streams`` table by :func:`to_tables`.
    """

    stream_id: int
    worker: int
    user: int
    t0_perf_ns: int  # perf_counter_ns when the request started to go out (TTFE and TTFB start here)
    start_ns: int  # wall clock (time.time_ns) at the same moment
    scheduled_ns: int  # open model: when the stream should have started (wall clock); 0: closed model
    connect_ns: int  # -1 when the connection was reused
    upload_ns: int
    ttfb_ns: int
    ttfe_ns: int
    duration_ns: int  # to the read that ended the stream
    sign_ns: int
    auth_fetch_ns: int
    status: int
    content_type: str
    charset_warning: bool
    body_bytes: int
    response_bytes: int
    events: int
    malformed_events: int
    outcome: Outcome
    error_code: str
    error: str
    reused: bool
    retried: bool = False  # sent again on a fresh connection: the idle keep-alive one had been closed
    redirects: int = 0  # redirects followed to reach the answer (its times count from the first request)
    # reconnect mode ([stream] reconnect): one feed, many connections; defaults: not a feed
    feed_id: int = 0  # the stream_id of the feed's first connection
    reconnect_ns: int = -1  # from the previous connection's end to this one's request (the retry wait)
    missed_events: int = -1  # event ids skipped across the reconnect (numeric ids only; -1: unknown)
    feed_gap_ns: int = -1  # from the previous connection's last event to this one's first
    # OpenAI-style streams ([stream] format, sseload.protocol.llm); defaults: not one
    ttft_ns: int = -1  # to the read that completed the first chunk carrying output
    output_tokens: int = -1
    prompt_tokens: int = -1  # usage.prompt_tokens, when the server sent usage
    tokens_from: str = ""  # "usage", "tokenizer" or "chunks" (sseload.protocol.llm)
    finish_reason: str = ""  # the last finish_reason a chunk gave (stop, length, content_filter, tool_calls)
    # multi-turn conversations ([body] multi_turn); defaults: not one
    conversation_id: int = 0  # the stream_id of the conversation's first turn
    turn: int = 0  # 1 for the first turn


#: The open shard of a table, an Arrow IPC stream until it becomes Parquet (sseload.record.recorder.ParquetSink).
OPEN_SHARD_SUFFIX = ".arrows"

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
    ("retried", pa.bool_()),
    ("redirects", pa.int32()),
    ("feed_id", pa.int64()),  # reconnect mode: the feed's first stream_id; null when not a feed
    ("reconnect_ms", pa.float64()),  # previous connection's end to this request; null on a feed's first
    ("missed_events", pa.int32()),  # event ids skipped across the reconnect; null when unknown
    ("feed_gap_ms", pa.float64()),  # previous connection's last event to this one's first; null if none
    ("ttft_ms", pa.float64()),  # OpenAI-style: to the first chunk carrying output; null otherwise
    ("tpot_ms", pa.float64()),  # (duration - TTFT) / (output tokens - 1); null below 2 tokens
    ("output_tokens", pa.int32()),  # null when not OpenAI-style
    ("tokens_per_s", pa.float64()),  # output_tokens / duration (llmperf's request output throughput)
    ("prompt_tokens", pa.int32()),  # usage.prompt_tokens; null when not sent
    ("tokens_from", pa.string()),  # "usage", "tokenizer" or "chunks"; null when not OpenAI-style
    ("finish_reason", pa.string()),  # OpenAI-style: the last finish_reason a chunk gave; null when none
    ("conversation_id", pa.int64()),  # multi-turn: the stream_id of the conversation's first turn; else null
    ("turn", pa.int32()),  # multi-turn: 1 for the first turn; else null
])

EVENTS_SCHEMA = pa.schema([
    ("stream_id", pa.int64()),
    ("seq", pa.int32()),
    ("t_ms", pa.float64()),  # since the stream's start
    ("gap_ms", pa.float64()),  # since the previous event of the stream; null for the first
    ("bytes", pa.int32()),
    ("lateness_ms", pa.float64()),  # receive time minus the server's send time; null without truth
    ("output", pa.bool_()),  # OpenAI-style: the chunk carried output; null otherwise
    ("completion_tokens", pa.int32()),  # OpenAI-style: the chunk's usage.completion_tokens; null when absent
    ("tokens", pa.int32()),  # OpenAI-style: output tokens the chunk carried (protocol.llm); null when unknown
])


class EventBuffer:
    """Flat arrays of event facts; a stream's events are appended together at its end."""

    __slots__ = ("t_ns", "size", "server_ns", "llm", "tokens")

    def __init__(self) -> None:
        self.t_ns = array("q")
        self.size = array("q")
        self.server_ns = array("q")
        self.llm = array("q")  # OpenAI-style streams only (sseload.protocol.llm): else empty
        self.tokens = array("q")  # OpenAI-style: the tokens each chunk carried, -1 unknown (sseload.protocol.llm)

    def __len__(self) -> int:
        return len(self.t_ns)

    def extend(self, log, tokens: np.ndarray | None = None) -> None:
        """Append one stream's events from its sseload.protocol.sse.EventLog (and, OpenAI-style, the tokens
        each carried: sseload.protocol.llm.StreamTokens.chunk_tokens)."""
        t_ns, size, server_ns = log.arrays()
        self.t_ns.frombytes(t_ns)
        self.size.frombytes(size)
        self.server_ns.frombytes(server_ns)
        llm = getattr(log, "llm", None)
        if llm is not None:
            self.llm.frombytes(llm())
        if tokens is not None:
            self.tokens.frombytes(tokens.astype(np.int64).tobytes())


def tpot(duration_ns, ttft_ns, output_tokens):
    """TPOT's one computation (sseload.record.metrics.TPOT), ms: (duration - TTFT) / (output tokens - 1);
    NaN without a first token and one more. Arrays or single values."""
    duration_ns, ttft_ns, output_tokens = np.asarray(duration_ns), np.asarray(ttft_ns), np.asarray(output_tokens)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((ttft_ns >= 0) & (output_tokens >= 2), (duration_ns - ttft_ns) / 1e6 / (output_tokens - 1),
                        np.nan)


def _ms(values: np.ndarray) -> pa.Array:
    """ns -> ms, with negative values (meaning "did not happen") as null."""
    return pa.array(values / 1e6, mask=values < 0)


def to_tables(streams: list[StreamRecord], events: EventBuffer,
              send_time_ns: int = 1) -> tuple[pa.Table, pa.Table]:
    """The batch as the documented tables; ``send_time_ns``: the unit of the services' send times, in ns."""
    n = len(streams)
    cols = StreamRecord(*zip(*streams, strict=True)) if n else StreamRecord(*([] for _ in StreamRecord._fields))

    def ints(values, dtype=np.int64) -> np.ndarray:
        return np.asarray(values, dtype=dtype)

    start_ns = ints(cols.start_ns)
    scheduled = ints(cols.scheduled_ns)
    lag = np.where(scheduled > 0, start_ns - scheduled, -1)
    ttft_ns, output_tokens = ints(cols.ttft_ns), ints(cols.output_tokens)
    duration_ns = ints(cols.duration_ns)
    tpot_ms = tpot(duration_ns, ttft_ns, output_tokens)
    with np.errstate(divide="ignore", invalid="ignore"):
        tokens_per_s = np.where((output_tokens >= 0) & (duration_ns > 0), output_tokens / (duration_ns / 1e9), np.nan)
    stream_table = pa.table({
        "stream_id": pa.array(ints(cols.stream_id)),
        "worker": pa.array(ints(cols.worker, np.int32)),
        "user": pa.array(ints(cols.user, np.int32)),
        "start_ns": pa.array(start_ns),
        "schedule_lag_ms": pa.array(lag / 1e6, mask=scheduled <= 0),
        "connect_ms": _ms(ints(cols.connect_ns)),
        "upload_ms": _ms(ints(cols.upload_ns)),
        "ttfb_ms": _ms(ints(cols.ttfb_ns)),
        "ttfe_ms": _ms(ints(cols.ttfe_ns)),
        "duration_ms": _ms(ints(cols.duration_ns)),
        "sign_us": pa.array(ints(cols.sign_ns) / 1e3),
        "auth_fetch_ms": pa.array(ints(cols.auth_fetch_ns) / 1e6),
        "status": pa.array(ints(cols.status, np.int32)),
        "content_type": pa.array(list(cols.content_type), pa.string()),
        "charset_warning": pa.array(list(cols.charset_warning), pa.bool_()),
        "body_bytes": pa.array(ints(cols.body_bytes)),
        "response_bytes": pa.array(ints(cols.response_bytes)),
        "events": pa.array(ints(cols.events, np.int32)),
        "malformed_events": pa.array(ints(cols.malformed_events, np.int32)),
        "outcome": pa.array(list(cols.outcome), pa.string()),
        "error_code": pa.array(list(cols.error_code), pa.string()),
        "error": pa.array(list(cols.error), pa.string()),
        "reused": pa.array(list(cols.reused), pa.bool_()),
        "retried": pa.array(list(cols.retried), pa.bool_()),
        "redirects": pa.array(ints(cols.redirects, np.int32)),
        "feed_id": pa.array(ints(cols.feed_id), mask=ints(cols.feed_id) == 0),
        "reconnect_ms": _ms(ints(cols.reconnect_ns)),
        "missed_events": pa.array(ints(cols.missed_events, np.int32), mask=ints(cols.missed_events) < 0),
        "feed_gap_ms": _ms(ints(cols.feed_gap_ns)),
        "ttft_ms": _ms(ttft_ns),
        "tpot_ms": pa.array(tpot_ms, mask=np.isnan(tpot_ms)),
        "output_tokens": pa.array(output_tokens.astype(np.int32), mask=output_tokens < 0),
        "tokens_per_s": pa.array(tokens_per_s, mask=np.isnan(tokens_per_s)),
        "prompt_tokens": pa.array(ints(cols.prompt_tokens, np.int32), mask=ints(cols.prompt_tokens) < 0),
        "tokens_from": pa.array([t or None for t in cols.tokens_from], pa.string()),
        "finish_reason": pa.array([f or None for f in cols.finish_reason], pa.string()),
        "conversation_id": pa.array(ints(cols.conversation_id), mask=ints(cols.conversation_id) == 0),
        "turn": pa.array(ints(cols.turn, np.int32), mask=ints(cols.turn) == 0),
    }, schema=STREAMS_SCHEMA)

    counts = ints(cols.events)
    total = int(counts.sum()) if n else 0
    if total != len(events):
        raise ValueError(f"batch has {len(events)} events but its streams count {total}")
    t_abs = np.frombuffer(events.t_ns, dtype=np.int64) if total else np.zeros(0, np.int64)
    size = np.frombuffer(events.size, dtype=np.int64) if total else np.zeros(0, np.int64)
    server = np.frombuffer(events.server_ns, dtype=np.int64) if total else np.zeros(0, np.int64)
    if send_time_ns != 1:
        server = server * send_time_ns
    first = np.cumsum(counts) - counts  # index of each stream's first event
    seq = np.arange(total, dtype=np.int64) - np.repeat(first, counts)
    t_rel = t_abs - np.repeat(ints(cols.t0_perf_ns), counts)
    gap = np.empty(total, dtype=np.float64)
    if total:
        gap[1:] = np.diff(t_rel) / 1e6
        gap[0] = np.nan
    wall = np.repeat(start_ns, counts) + t_rel
    event_table = pa.table({
        "stream_id": pa.array(np.repeat(ints(cols.stream_id), counts)),
        "seq": pa.array(seq.astype(np.int32)),
        "t_ms": pa.array(t_rel / 1e6),
        "gap_ms": pa.array(gap, mask=seq == 0),
        "bytes": pa.array(size.astype(np.int32)),
        "lateness_ms": pa.array((wall - server) / 1e6, mask=server <= 0),
        **_llm_columns(events, total),
    }, schema=EVENTS_SCHEMA)
    return stream_table, event_table


def _llm_columns(events: EventBuffer, total: int) -> dict[str, pa.Array]:
    """The events' OpenAI-style columns: null for plain SSE (one scenario's streams are all one kind)."""
    if len(events.llm) != total or not total:
        return {"output": pa.nulls(total, pa.bool_()), "completion_tokens": pa.nulls(total, pa.int32()),
                "tokens": pa.nulls(total, pa.int32())}
    output, usage = unpack(np.frombuffer(events.llm, dtype=np.int64))
    tokens = np.frombuffer(events.tokens, dtype=np.int64) if len(events.tokens) == total else np.full(total, -1)
    return {"output": pa.array(output),
            "completion_tokens": pa.array(usage.astype(np.int32), mask=usage < 0),
            "tokens": pa.array(tokens.astype(np.int32), mask=tokens < 0)}


#: A stream of at least this many events that all came in one read: buffered on the way, or written together.
BUFFERED_MIN_EVENTS = 3


def buffered_streams(events: pa.Table) -> int:
    """Streams whose every event arrived in one read (all at one ``t_ms``, every gap 0): a buffering
    proxy or server held them and let them go together, so their gaps and TTFE describe the buffer,
    not the service. ``events`` holds whole streams, each stream's events together and in order of
    arrival (``stream_id``, ``t_ms``), as every batch and a whole run's events are."""
    if events.num_rows == 0:
        return 0
    sid = events.column("stream_id").to_numpy()
    t = events.column("t_ms").to_numpy()
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    ends = np.r_[starts[1:], sid.size] - 1
    return int(((ends - starts + 1 >= BUFFERED_MIN_EVENTS) & (t[starts] == t[ends])).sum())
