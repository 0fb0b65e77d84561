"""Stream records: raw facts from the hot path, turned into Parquet tables off it.

The user appends one :class:`StreamRecord` per stream and flat arrays of event facts (read time
in perf_counter ns, data bytes, server send time; LLM streams, the chunks' facts); every event
of a stream is contiguous. :func:`to_tables` turns a batch into the ``streams`` and ``events``
tables with numpy, so no per-event Python work happens after the read. Each column is declared
once, here (sseload.record.columns says how; docs/results-format.md is made from it).
"""

from array import array
from typing import Annotated, NamedTuple

import numpy as np
import pyarrow as pa

from sseload.protocol.outcomes import Outcome
from sseload.protocol.scan import ANSWER
from sseload.record.columns import (
    BOOL,
    FLOAT64,
    INT32,
    INT64,
    STRING,
    Column,
    Facts,
    column,
    columns_of,
    derived,
    ms,
    schema_of,
)
from sseload.record.tokens import unpack


def tpot(duration_ns, ttft_ns, output_tokens):
    """TPOT's one computation (sseload.record.metrics.TPOT), ms: (duration - TTFT) / (output tokens - 1);
    NaN without a first token and one more. Arrays or single values."""
    duration_ns, ttft_ns, output_tokens = np.asarray(duration_ns), np.asarray(ttft_ns), np.asarray(output_tokens)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((ttft_ns >= 0) & (output_tokens >= 2), (duration_ns - ttft_ns) / 1e6 / (output_tokens - 1),
                        np.nan)


def _schedule_lag_ms(f: Facts) -> tuple[np.ndarray, np.ndarray]:
    scheduled = f.ints("scheduled_ns")
    return (f.ints("start_ns") - scheduled) / 1e6, scheduled <= 0


def _tpot_ms(f: Facts) -> tuple[np.ndarray, np.ndarray]:
    values = tpot(f.ints("duration_ns"), f.ints("ttft_ns"), f.ints("output_tokens"))
    return values, np.isnan(values)


def _prefill_tokens_per_s(f: Facts) -> tuple[np.ndarray, np.ndarray]:
    prompt, ttft_ns = f.ints("prompt_tokens"), f.ints("ttft_ns")
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where((prompt >= 0) & (ttft_ns > 0), prompt / (ttft_ns / 1e9), np.nan)
    return values, np.isnan(values)


def _tokens_per_s(f: Facts) -> tuple[np.ndarray, np.ndarray]:
    tokens, duration_ns = f.ints("output_tokens"), f.ints("duration_ns")
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where((tokens >= 0) & (duration_ns > 0), tokens / (duration_ns / 1e9), np.nan)
    return values, np.isnan(values)


class StreamRecord(NamedTuple):
    """One stream's raw facts, as the client records them (perf_counter ns; -1: did not happen).

    Built once per stream on the hot path, by keyword (a NamedTuple costs what a tuple does).
    Each field's ``Annotated`` metadata declares the ``streams.parquet`` columns it becomes, in
    the file's order: name, Arrow type, unit, meaning and conversion (sseload.record.columns); a
    plain field is a fact other columns are computed from. A new column is a field here, with a
    default, set where its value is measured; then regenerate docs/results-format.md.
    """

    stream_id: Annotated[int, column(INT64, "unique in the run (the worker's number in the top bits)")]
    worker: Annotated[int, column(INT32, "the Locust worker (0 without workers)")]
    user: Annotated[int, column(INT32, "the Locust user within its process")]
    t0_perf_ns: int  # perf_counter_ns at t0, when the request started to go out: every stream time counts from here
    start_ns: Annotated[int, column(INT64, "wall clock (`time.time_ns`) at t0", unit="ns")]
    # open model: when the stream should have started (wall clock); 0: the closed model
    scheduled_ns: Annotated[int, derived("schedule_lag_ms", FLOAT64, "ms", "open model: how late the stream started "
                                         "against its schedule; null in the closed model", "`start_ns` - "
                                         "`scheduled_ns`, ÷ 1,000,000; `scheduled_ns` 0 → null", _schedule_lag_ms)]
    connect_ns: Annotated[int, ms("connect_ms", "from connect's start to TCP connected and the TLS handshake done "
                                  "(before t0); null when the connection was reused")]
    upload_ns: Annotated[int, ms("upload_ms", "to the request's head and body handed to the kernel (a request the "
                                 "server stopped reading: to the last byte it took)")]
    ttfb_ns: Annotated[int, ms("ttfb_ms", "to the read that completed the response head")]
    ttfe_ns: Annotated[int, ms("ttfe_ms", "to the read that completed the first event")]
    duration_ns: Annotated[int, ms("duration_ms", "to the stream's last read (the read that ended it)")]
    sign_ns: Annotated[int, column(FLOAT64, "signing the request, an IAM token fetch excluded", name="sign_us",
                                   unit="µs", scale=1e3)]
    auth_fetch_ns: Annotated[int, column(FLOAT64, "an IAM token fetch this stream paid for (usually 0: cached); "
                                         "never part of latency", name="auth_fetch_ms", unit="ms", scale=1e6)]
    status: Annotated[int, column(INT32, "HTTP status (0: none received)")]
    content_type: Annotated[str, column(STRING, "the response's `Content-Type`")]
    charset_warning: Annotated[bool, column(BOOL, "the charset is missing or not UTF-8")]
    body_bytes: Annotated[int, column(INT64, "the request body's size", unit="bytes")]
    response_bytes: Annotated[int, column(INT64, "response bytes received, head and framing included", unit="bytes")]
    events: Annotated[int, column(INT32, "events recorded (its rows in `events.parquet`)", unit="events")]
    malformed_events: Annotated[int, column(INT32, "ignored lines and undecodable events", unit="events")]
    outcome: Annotated[Outcome, column(STRING, "how the stream ended ([outcomes.md](outcomes.md))")]
    error_code: Annotated[str, column(STRING, "the gateway's `error_code` (e.g. `APIG.0308`), where there was one")]
    error: Annotated[str, column(STRING, "what happened, in words (secrets masked)")]
    reused: Annotated[bool, column(BOOL, "the stream ran on a kept-alive connection")]
    retried: Annotated[bool, column(BOOL, "a retry: the request went out before on a kept-alive connection that "
                                          "the server closed before a byte of answer (that attempt is its user's "
                                          "row before, a `reset`); sent again once, for an idempotent method "
                                          "only")] = False
    redirects: Annotated[int, column(INT32, "redirects followed on the same host to reach the answer (each one a "
                                            "row before, `redirected`); the stream's times count from the first "
                                            "request")] = 0
    http_version: Annotated[str, column(STRING, "the response's HTTP version as its status line gave it: `1.1` or "
                                                "`1.0`; null when no response head came", null="empty")] = ""
    # reconnect mode ([stream] reconnect): one feed, many connections; defaults: not a feed
    feed_id: Annotated[int, column(INT64, "reconnect mode: the `stream_id` of the feed's first connection (every "
                                          "connection of one feed shares it); null when not a feed", null="zero")] = 0
    reconnect_ns: Annotated[int, ms("reconnect_ms", "reconnect mode: from the read that ended the feed's previous "
                                    "connection to this one's request (the server's `retry:`, else `reconnect_ms`); "
                                    "null on a feed's first connection")] = -1
    missed_events: Annotated[int, column(INT32, "reconnect mode: event ids skipped between the previous "
                                                "connection's last event and this one's first (numeric ids: what "
                                                "resuming from `Last-Event-ID` lost); null when unknown",
                                         unit="events", null="negative")] = -1
    feed_gap_ns: Annotated[int, ms("feed_gap_ms", "reconnect mode: from the previous connection's last event to this "
                                   "one's first: the stall the feed's user saw across the reconnect")] = -1
    # LLM streams (an API's dialect: [stream] format, sseload.record.tokens, docs/llm.md); defaults: not one
    ttft_ns: Annotated[int, ms("ttft_ms", "LLM: time to first token, to the read that completed the first chunk "
                               "carrying output (answer, reasoning or tool calls, as [stream] output says)"),
                       derived("tpot_ms", FLOAT64, "ms", "LLM: time per output token after the first; null "
                               "below two tokens", "(`duration_ns` - `ttft_ns`) ÷ (`output_tokens` - 1), in ms",
                               _tpot_ms)] = -1
    answer_ttft_ns: Annotated[int, ms("answer_ttft_ms", "LLM: time to the first answer token: the first chunk "
                                      "carrying answer text, after any reasoning or tool calls")] = -1
    ttst_ns: Annotated[int, ms("ttst_ms", "LLM: time to second token, to the read that completed the chunk "
                               "carrying the stream's second output token")] = -1
    max_stall_ns: Annotated[int, ms("max_stall_ms", "LLM: the largest gap between two consecutive chunks carrying "
                                    "output: the longest the answer froze")] = -1
    output_tokens: Annotated[int, column(INT32, "LLM: output tokens, counted as `tokens_from` says",
                                         unit="tokens", null="negative"),
                             derived("tokens_per_s", FLOAT64, "tokens/s", "LLM: output tokens per second of "
                                     "the stream's duration, llmperf's request output throughput",
                                     "`output_tokens` ÷ `duration_ns`, in s", _tokens_per_s)] = -1
    prompt_tokens: Annotated[int, column(INT32, "LLM: the prompt tokens the last usage gave; null without usage",
                                         unit="tokens", null="negative"),
                             derived("prefill_tokens_per_s", FLOAT64, "tokens/s", "LLM: prompt tokens per second "
                                     "of the time to first token (prefill throughput)",
                                     "`prompt_tokens` ÷ `ttft_ns`, in s", _prefill_tokens_per_s)] = -1
    reasoning_tokens: Annotated[int, column(INT32, "LLM: the reasoning tokens the usage reported (part of "
                                                   "`output_tokens`); null where it reported none",
                                            unit="tokens", null="negative")] = -1
    cached_tokens: Annotated[int, column(INT32, "LLM: prompt tokens the server's cache served, as its usage "
                                                "reported; null where it reported none",
                                         unit="tokens", null="negative")] = -1
    tokenizer_tokens: Annotated[int, column(INT32, "LLM with a [stream] tokenizer: its count of the output text, "
                                                   "beside the usage's (`tokenizer_vs_usage` in the summary); null "
                                                   "without one", unit="tokens", null="negative")] = -1
    tokens_from: Annotated[str, column(STRING, "LLM: what counted `output_tokens`: `usage`, `tokenizer` or "
                                               "`chunks` ([llm.md](llm.md))", null="empty")] = ""
    finish_reason: Annotated[str, column(STRING, "LLM: the last finish reason the stream gave, in its API's words "
                                                 "(`stop`, `length`, `end_turn`, `max_tokens`, `STOP`, `completed`, "
                                                 "...); null when none", null="empty")] = ""
    response_id: Annotated[str, column(STRING, "LLM: the service's id of the response, from the stream (a chunk's "
                                               "`id`, the message's or response's id): the key to the server's own "
                                               "log; null when none", null="empty")] = ""
    request_id: Annotated[str, column(STRING, "the request id the response head gave (`X-Request-Id`, "
                                              "`Request-Id`, ...): the key to the gateway's or server's log; null "
                                              "when none", null="empty")] = ""
    server_timings: Annotated[str, column(STRING, "LLM: the server's own timings of the request as it reported "
                                                  "them in the stream (llama.cpp's `timings`), as JSON; null when "
                                                  "none", null="empty")] = ""
    # multi-turn conversations ([body] multi_turn); defaults: not one
    conversation_id: Annotated[int, column(INT64, "multi-turn: the `stream_id` of the conversation's first turn; "
                                                  "null otherwise", null="zero")] = 0
    turn: Annotated[int, column(INT32, "multi-turn: 1 for the first turn; null otherwise", null="zero")] = 0


#: streams.parquet's columns, as StreamRecord declares them.
STREAM_COLUMNS = columns_of(StreamRecord)

#: events.parquet's columns; to_tables computes each from the batch's EventBuffer (named in ``how``).
EVENT_COLUMNS = (
    Column("stream_id", INT64, "", "the stream's `stream_id`", how="the stream's record"),
    Column("seq", INT32, "", "the event's position in its stream, from 0", how="the order of the stream's events"),
    Column("t_ms", FLOAT64, "ms", "to the read that completed the event",
           how="`t_ns` (the read's time) - the stream's `t0_perf_ns`, ÷ 1,000,000"),
    Column("gap_ms", FLOAT64, "ms", "since the previous event of the stream; null for the first; 0: read together",
           how="`t_ms` - the stream's previous `t_ms`"),
    Column("bytes", INT32, "bytes", "the event's data bytes", how="`size`"),
    Column("lateness_ms", FLOAT64, "ms", "arrival on the wall clock (`start_ns` + `t_ms`) minus the service's send "
           "time (`t_send_ns`); null when the event carried none", how="`start_ns` + `t_ms` - `server_ns` (in "
           "the scenario's send time unit); `server_ns` 0 → null"),
    Column("output", BOOL, "", "LLM: the chunk carried output; null for plain SSE", how="`llm`"),
    Column("answer", BOOL, "", "LLM: the chunk carried answer text (not only reasoning or tool calls); null for "
           "plain SSE", how="`llm`"),
    Column("completion_tokens", INT32, "tokens", "LLM: the output tokens the chunk's usage reported (cumulative, "
           "`usage.completion_tokens` and its kin); null when absent", how="`llm`; negative → null"),
    Column("tokens", INT32, "tokens", "LLM: output tokens the chunk carried ([llm.md](llm.md)); null when "
           "unknown", how="`tokens`; negative → null"),
)

STREAMS_SCHEMA = schema_of(STREAM_COLUMNS)
EVENTS_SCHEMA = schema_of(EVENT_COLUMNS)

#: The open shard of a table, an Arrow IPC stream until it becomes Parquet (sseload.record.sink.ParquetSink).
OPEN_SHARD_SUFFIX = ".arrows"


#: The facts of one part of a stream's events in an EventBuffer, in ``EventBuffer.parts``: its stream's
#: ``stream_id``, ``t0_perf_ns`` and ``start_ns``, the ``seq`` of its first event, the read time of the
#: stream's event before it (-1: none, it begins the stream) and its number of events.
PART_FACTS = 6


class EventBuffer:
    """Flat arrays of event facts, in parts: a part is some of one stream's events, in order.

    A stream's events are one part, appended at its end; a long stream's come in several, the
    recorder taking what it holds while it is open (``add_part``), the rest at its end. ``parts`` holds
    PART_FACTS per part; a buffer filled without them (tests, tools) holds whole streams in the
    order of the records given with it (to_tables)."""

    __slots__ = ("llm", "parts", "server_ns", "size", "t_ns", "tokens")

    def __init__(self) -> None:
        self.t_ns = array("q")
        self.size = array("q")
        self.server_ns = array("q")
        self.llm = array("q")  # LLM streams only (sseload.protocol.scan): else empty
        self.tokens = array("q")  # LLM: the tokens each chunk carried, -1 unknown (sseload.record.tokens)
        self.parts = array("q")  # PART_FACTS per part; empty: whole streams, as the records say

    def __len__(self) -> int:
        return len(self.t_ns)

    def extend(self, log, tokens: np.ndarray | None = None) -> None:
        """Append one stream's events held by its sseload.protocol.sse.EventLog (and, LLM streams, the
        tokens each carried: sseload.record.tokens.StreamTokens.chunk_tokens)."""
        t_ns, size, server_ns = log.arrays()
        self.t_ns.frombytes(t_ns)
        self.size.frombytes(size)
        self.server_ns.frombytes(server_ns)
        llm = getattr(log, "llm", None)
        if llm is not None:
            self.llm.frombytes(llm())
        if tokens is not None:
            self.tokens.frombytes(tokens.astype(np.int64).tobytes())

    def add_part(self, arrays: tuple[bytes, bytes, bytes, bytes], tokens: np.ndarray | None, stream_id: int,
                 t0_perf_ns: int, start_ns: int, seq: int, prev_t_ns: int) -> None:
        """Append part of an open stream's events: its log's ``spill()`` (``arrays``; an LLM stream's with
        the tokens each chunk carried), from event ``seq`` on, the event before it read at ``prev_t_ns``."""
        t_ns, size, server_ns, llm = arrays
        n = len(t_ns) // 8
        self.t_ns.frombytes(t_ns)
        self.size.frombytes(size)
        self.server_ns.frombytes(server_ns)
        if llm:
            self.llm.frombytes(llm)
            self.tokens.frombytes((tokens if tokens is not None else np.full(n, -1)).astype(np.int64).tobytes())
        self.parts.extend((stream_id, t0_perf_ns, start_ns, seq, prev_t_ns, n))

    def take(self, other: "EventBuffer", stream_id: int, t0_perf_ns: int, start_ns: int, seq: int = 0,
             prev_t_ns: int = -1) -> str:
        """Move one stream's events from ``other`` (a user's own buffer, left empty) to the end of these,
        as a part (``seq``, ``prev_t_ns``: where the events spilled before left off).

        One bad stream never sinks a batch: arrays out of step are padded or dropped, and what was
        mended is returned in words ("" when nothing was)."""
        n = len(other.t_ns)
        mended = []
        if not len(other.size) == len(other.server_ns) == n:
            mended.append(f"event arrays out of step; padded to {n} events")
            for facts in (other.size, other.server_ns):
                del facts[n:]
                facts.extend([0] * (n - len(facts)))
        self.t_ns.extend(other.t_ns)
        self.size.extend(other.size)
        self.server_ns.extend(other.server_ns)
        if len(other.llm) == len(other.tokens) == n:  # LLM (else none: no events, nothing to pad)
            self.llm.extend(other.llm)
            self.tokens.extend(other.tokens)
        elif len(other.llm) or len(self.llm):
            mended.append("token facts out of step with its events; dropped")
        self.parts.extend((stream_id, t0_perf_ns, start_ns, seq, prev_t_ns, n))
        del other.t_ns[:], other.size[:], other.server_ns[:], other.llm[:], other.tokens[:], other.parts[:]
        return "; ".join(mended)


def _parts(facts: Facts, events: EventBuffer) -> tuple[np.ndarray, ...]:
    """Each part's (stream_id, t0_perf_ns, start_ns, first seq, previous read time, events): the buffer's
    parts, or without them each stream whole, as its record counts its events."""
    if len(events.parts):
        p = np.frombuffer(events.parts, dtype=np.int64).reshape(-1, PART_FACTS)
        return tuple(p[:, k] for k in range(PART_FACTS))
    counts = facts.ints("events")
    zeros = np.zeros(counts.size, np.int64)
    return facts.ints("stream_id"), facts.ints("t0_perf_ns"), facts.ints("start_ns"), zeros, zeros - 1, counts


def to_tables(streams: list[StreamRecord], events: EventBuffer,
              send_time_ns: int = 1) -> tuple[pa.Table, pa.Table]:
    """The batch as the documented tables; ``send_time_ns``: the unit of the services' send times, in ns."""
    facts = Facts(StreamRecord._fields, streams)
    stream_table = pa.Table.from_arrays([c.array(facts) for c in STREAM_COLUMNS], schema=STREAMS_SCHEMA)

    stream_id, t0, start_ns, seq0, prev_t, counts = _parts(facts, events)
    total = int(counts.sum())
    if total != len(events):
        raise ValueError(f"batch has {len(events)} events but its streams count {total}")
    t_abs = np.frombuffer(events.t_ns, dtype=np.int64) if total else np.zeros(0, np.int64)
    size = np.frombuffer(events.size, dtype=np.int64) if total else np.zeros(0, np.int64)
    server = np.frombuffer(events.server_ns, dtype=np.int64) if total else np.zeros(0, np.int64)
    if send_time_ns != 1:
        server = server * send_time_ns
    first = np.cumsum(counts) - counts  # index of each part's first event
    in_part = np.arange(total, dtype=np.int64) - np.repeat(first, counts)
    seq = in_part + np.repeat(seq0, counts)
    t_rel = t_abs - np.repeat(t0, counts)
    gap = np.empty(total, dtype=np.float64)
    if total:
        gap[1:] = np.diff(t_abs) / 1e6
        heads = first[counts > 0]  # a part's first event: its gap is from the part before (none: the stream's first)
        before = prev_t[counts > 0]
        gap[heads] = np.where(before >= 0, (t_abs[heads] - before) / 1e6, np.nan)
    wall = np.repeat(start_ns, counts) + t_rel
    columns = {
        "stream_id": pa.array(np.repeat(stream_id, counts)),
        "seq": pa.array(seq.astype(np.int32)),
        "t_ms": pa.array(t_rel / 1e6),
        "gap_ms": pa.array(gap, mask=seq == 0),
        "bytes": pa.array(size.astype(np.int32)),
        "lateness_ms": pa.array((wall - server) / 1e6, mask=server <= 0),
        **_llm_columns(events, total),
    }
    event_table = pa.Table.from_arrays([columns[c.name] for c in EVENT_COLUMNS], schema=EVENTS_SCHEMA)
    return stream_table, event_table


def _llm_columns(events: EventBuffer, total: int) -> dict[str, pa.Array]:
    """The events' LLM columns: null for plain SSE (one scenario's streams are all one kind)."""
    if len(events.llm) != total or not total:
        return {"output": pa.nulls(total, pa.bool_()), "answer": pa.nulls(total, pa.bool_()),
                "completion_tokens": pa.nulls(total, pa.int32()), "tokens": pa.nulls(total, pa.int32())}
    kinds, usage = unpack(np.frombuffer(events.llm, dtype=np.int64))
    tokens = np.frombuffer(events.tokens, dtype=np.int64) if len(events.tokens) == total else np.full(total, -1)
    return {"output": pa.array(kinds != 0), "answer": pa.array((kinds & ANSWER) != 0),
            "completion_tokens": pa.array(usage.astype(np.int32), mask=usage < 0),
            "tokens": pa.array(tokens.astype(np.int32), mask=tokens < 0)}


#: A stream of at least this many events that all came in one read: buffered on the way, or written together.
BUFFERED_MIN_EVENTS = 3


def buffered_streams(events: pa.Table, streams: pa.Table | None = None) -> int:
    """Streams whose every event arrived in one read (all at one ``t_ms``, every gap 0): a buffering
    proxy or server held them and let them go together, so their gaps and TTFE describe the buffer,
    not the service. ``events`` holds each stream's events together and in order of arrival
    (``stream_id``, ``t_ms``), as every batch does. With ``streams`` (the batch's records), only the
    streams whose every event is in ``events`` count: a long stream's events spilled in earlier
    batches (sseload.record.recorder) make it no buffered stream."""
    if events.num_rows == 0:
        return 0
    sid = events.column("stream_id").to_numpy()
    t = events.column("t_ms").to_numpy()
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    ends = np.r_[starts[1:], sid.size] - 1
    held = ends - starts + 1
    buffered = (held >= BUFFERED_MIN_EVENTS) & (t[starts] == t[ends])
    if streams is not None:
        ids, counts = streams.column("stream_id").to_numpy(), streams.column("events").to_numpy()
        order = np.argsort(ids)
        at = np.minimum(np.searchsorted(ids[order], sid[starts]), max(ids.size - 1, 0))
        whole = (ids[order][at] == sid[starts]) & (counts[order][at] == held) if ids.size else False
        buffered &= whole
    return int(buffered.sum())
