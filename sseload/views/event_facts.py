"""What the summary, the report and the charts take from a run's events, read a batch at a time.

The events table is a run's large one (a row per event: a run of 80 M events took over 14 GB as a
pandas frame), and the views need only some numbers and series from it. :class:`EventFacts` is the
one place they get them: it reads the events' shards (sseload.views.shards; an events frame already
in memory reads the same way) ``batch_rows`` rows at a time, with only the columns a computation
needs, and keeps what each computation needs of them:

- the gaps (``gap_ms``) and the lateness (``lateness_ms``, the first events' apart) gathered whole,
  one column at a time: their percentiles are exact (sseload.views.distribution), not estimated;
- per stream (sseload.views.stream_facts.PerStream): its events, first and last read, largest and
  summed gaps, output chunks and the tokens they carried, added up batch by batch, so a stream's
  events may come in any batches and shards, apart, in their order of arrival within the stream;
- per time bucket: events, bytes, output tokens, and a log histogram of the gaps (the gaps chart's
  percentiles over time, within 1.2%: sseload.views.histogram.LogHistograms);
- for OpenAI-style streams, ITL (per output chunk, the gap since the same stream's output chunk
  before, carried across batches) gathered whole, ITL per token (each ITL divided by its chunk's
  tokens, counted once per token, :func:`~sseload.views.distribution.percentiles_repeated`) and a
  log histogram of ITL per count of streams open.

Each group is computed on first use, in a pass of its own over the events: plain SSE costs two
passes (gaps and per stream; lateness), OpenAI-style streams two more (ITL; ITL per token).

Memory, the bound: one column gathered whole (float64, 8 bytes a row of the table: 800 MB for 100 M
events; gathered, reduced and freed before the next) plus one batch (``batch_rows`` rows of the
columns a pass reads and their intermediate arrays; BATCH_ROWS, a million: about 200 MB), beside
what stays small: about 100 bytes per stream, 3.6 kB per time bucket (an hour of seconds: 13 MB)
and per count of streams open, and the streams frame itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sseload.views.distribution import (
    Distribution,
    log_histogram,
    percentiles_in_place,
    percentiles_repeated,
)
from sseload.views.histogram import LogHistograms
from sseload.views.shards import FrameEvents, Shards
from sseload.views.stream_facts import PerStream, StreamSlots, itl_of
from sseload.views.timeline import OpenStreams, buckets, stream_ends_ns

BATCH_ROWS = 1 << 20


Events = Shards | FrameEvents


def _floats(batch: pa.Table, name: str) -> np.ndarray:
    """A column as float64, null as NaN."""
    return np.asarray(batch.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def _flags(batch: pa.Table, name: str) -> np.ndarray:
    """A boolean column, null as False."""
    column = batch.column(name)
    if pa.types.is_null(column.type):
        return np.zeros(len(column), dtype=bool)
    return pc.fill_null(column.cast(pa.bool_()), False).to_numpy(zero_copy_only=False)


class _Gathered:
    """One column's values, gathered batch by batch into one array (no copy at the end)."""

    def __init__(self, capacity: int) -> None:
        self.values = np.empty(capacity, dtype=np.float64)
        self.n = 0

    def add(self, values: np.ndarray) -> None:
        self.values[self.n:self.n + values.size] = values
        self.n += values.size

    def taken(self) -> np.ndarray:
        return self.values[:self.n]


@dataclass
class _Flow:
    gap_ms: dict
    gap_histogram: tuple[np.ndarray, np.ndarray] | None
    events_read_together: int
    events_per_bucket: np.ndarray
    bytes_per_bucket: np.ndarray
    gaps_by_bucket: LogHistograms


@dataclass
class _Chunks:
    itl: Distribution
    tokens_per_chunk: np.ndarray  # chunks with an ITL and known tokens, by their tokens (bincount)
    itl_by_open_streams: LogHistograms
    output_tokens_per_bucket: np.ndarray


class EventFacts:
    """The facts of a run's events, each group computed a batch at a time on first use (module docstring).

    ``streams`` is the run's streams frame, which places each event on the run's clock
    (sseload.views.timeline) and gives each OpenAI-style stream its output tokens; ``bucket_s`` is
    the time buckets' width.
    """

    def __init__(self, events: Events, streams: pd.DataFrame, bucket_s: float = 1.0,
                 batch_rows: int | None = None) -> None:
        self.events, self.streams, self.bucket_s = events, streams, bucket_s
        self.batch_rows = batch_rows or BATCH_ROWS  # (read when made: a test may set BATCH_ROWS)
        self.slots = StreamSlots(streams)
        self.t0_ns, self.edges_s = buckets(streams, bucket_s)
        self._start_s = (self.slots.start_ns - self.t0_ns) / 1e9  # each slot's stream's start, on the run's clock
        self.per_stream = PerStream()

    @classmethod
    def of_frame(cls, events: pd.DataFrame, streams: pd.DataFrame | None = None, bucket_s: float = 1.0) -> EventFacts:
        return cls(FrameEvents(events), streams if streams is not None else pd.DataFrame(), bucket_s)

    def at(self, bucket_s: float) -> EventFacts:
        """These facts in time buckets of ``bucket_s`` (itself, when they are)."""
        return self if bucket_s == self.bucket_s else EventFacts(self.events, self.streams, bucket_s, self.batch_rows)

    @property
    def rows(self) -> int:
        return self.events.rows

    @property
    def has_output(self) -> bool:
        """The events say which chunks carried output (OpenAI-style streams' columns)."""
        return "output" in self.events.names

    @property
    def has_tokens(self) -> bool:
        return "tokens" in self.events.names

    def _batches(self, columns: list[str]) -> Iterator[pa.Table]:
        return self.events.batches(columns, self.batch_rows)

    def _seconds(self, slot: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """Each event's read time in seconds since the run's first stream started; NaN where its stream
        is not in the streams frame."""
        if slot.size and slot.max() >= self._start_s.size:  # streams not in the frame: no start
            self._start_s = np.r_[self._start_s, np.full(self.slots.size - self._start_s.size, np.nan)]
        return self._start_s[slot] + t_ms / 1e3

    def _bucket(self, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each time's bucket, and which times fall in one (np.histogram's: the last edge in the last)."""
        edges = self.edges_s
        i = np.searchsorted(edges, seconds, side="right") - 1
        i[seconds == edges[-1]] = edges.size - 2
        inside = (i >= 0) & (i < edges.size - 1)
        return i, inside

    # --- the gaps and each stream's facts: one pass ---

    @cached_property
    def _flow(self) -> _Flow:
        columns = ["stream_id", "t_ms", "gap_ms", "bytes", *(c for c in ("output", "tokens") if c in self.events.names)]
        gaps = _Gathered(self.rows)
        n = self.edges_s.size - 1
        events, nbytes, together = np.zeros(n, np.int64), np.zeros(n), 0
        gaps_by_bucket = LogHistograms()
        self.per_stream.grow(self.slots.size)
        for batch in self._batches(columns):
            slot = self.slots.of(batch.column("stream_id").to_numpy())
            t_ms, gap = _floats(batch, "t_ms"), _floats(batch, "gap_ms")
            output = _flags(batch, "output") if self.has_output else None
            tokens = _floats(batch, "tokens") if self.has_tokens else None
            self.per_stream.add(slot, t_ms, gap, output, tokens)
            known = ~np.isnan(gap)
            gaps.add(gap[known])
            together += int(np.count_nonzero(gap == 0))
            bucket, inside = self._bucket(self._seconds(slot, t_ms))
            events += np.bincount(bucket[inside], minlength=n)
            nbytes += np.bincount(bucket[inside], weights=_floats(batch, "bytes")[inside], minlength=n)
            both = inside & known
            gaps_by_bucket.add(bucket[both], gap[both])
        gap = gaps.taken()
        stats = percentiles_in_place(gap)
        histogram = log_histogram(gap) if gap.size else None
        return _Flow(stats, histogram, together, events, nbytes, gaps_by_bucket)

    @property
    def gap_ms(self) -> dict:
        """The gaps' percentiles (``gap_ms`` of the summary)."""
        return self._flow.gap_ms

    @property
    def gap_histogram(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(counts, edges) of the gaps on log-spaced bins (distribution.log_histogram); None without gaps."""
        return self._flow.gap_histogram

    @property
    def events_read_together(self) -> int:
        """Events whose gap is 0: read together with the one before (docs/measurement.md)."""
        return self._flow.events_read_together

    @property
    def buffered_streams(self) -> int:
        self._flow  # noqa: B018 (the pass that adds up each stream's facts)
        return self.per_stream.buffered()

    @property
    def stream_gaps(self) -> pd.DataFrame:
        """Per stream with events, by stream_id: ``max_gap_ms`` and ``mean_gap_ms``."""
        self._flow  # noqa: B018
        return self.per_stream.gaps_frame(self.slots.ids)

    @property
    def events_per_bucket(self) -> np.ndarray:
        """Events read in each time bucket (``edges_s``)."""
        return self._flow.events_per_bucket

    @property
    def bytes_per_bucket(self) -> np.ndarray:
        return self._flow.bytes_per_bucket

    def gaps_over_time(self, qs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(each bucket with gaps: its start, s; the quantiles ``qs`` of its gaps, a row each), from
        the gaps' log histogram per bucket (within 1.2%)."""
        keys, quantiles = self._flow.gaps_by_bucket.quantiles_by_key(qs)
        return self.edges_s[keys], quantiles

    # --- the lateness: one pass ---

    @cached_property
    def _lateness(self) -> tuple[dict, dict]:
        late = _Gathered(self.rows)
        first = []
        for batch in self._batches(["seq", "lateness_ms"]):
            lateness = _floats(batch, "lateness_ms")
            known = ~np.isnan(lateness)
            late.add(lateness[known])
            first.append(lateness[(batch.column("seq").to_numpy(zero_copy_only=False) == 0) & known])
        firsts = np.concatenate(first) if first else np.empty(0)
        return percentiles_in_place(late.taken(), (50, 99, 99.9)), percentiles_in_place(firsts, (50, 99))

    @property
    def lateness_ms(self) -> dict:
        """Event lateness against the service's send times: p50, p99, p99.9."""
        return self._lateness[0]

    @property
    def ttfe_error_ms(self) -> dict:
        """The first events' lateness (``seq`` 0): p50, p99."""
        return self._lateness[1]

    # --- OpenAI-style streams: ITL and the output tokens in time, one pass; ITL per token, one more ---

    def _chunk_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each batch's output chunks: (slot, t_ms, tokens carried (NaN: unknown))."""
        columns = ["stream_id", "t_ms", "output", *(["tokens"] if self.has_tokens else [])]
        for batch in self._batches(columns):
            output = _flags(batch, "output")
            if not output.any():
                continue
            slot = self.slots.of(batch.column("stream_id").to_numpy()[output])
            tokens = _floats(batch, "tokens")[output] if self.has_tokens else np.full(slot.size, np.nan)
            yield slot, _floats(batch, "t_ms")[output], tokens

    def _stream_tokens(self) -> np.ndarray:
        """Each slot's output tokens as the streams frame counts them (0 unknown; NaN: not in the frame)."""
        tokens = np.full(self.slots.size, np.nan)
        if "output_tokens" in self.streams and self.slots.known.size:
            by_id = self.streams.drop_duplicates("stream_id").set_index("stream_id")["output_tokens"]
            tokens[:self.slots.known.size] = by_id.reindex(self.slots.known).fillna(0).to_numpy(np.float64)
        return tokens

    def _placed(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per batch of output chunks: (slot, t_ms, ITL, tokens carried, output tokens placed at each).

        A stream's output tokens (the streams frame's count, as the summary's) are spread over its
        output chunks by the tokens each carried where all of them are known, else in equal shares;
        a stream without output chunks has them all at its end (:meth:`output_tokens_at`)."""
        self._flow  # noqa: B018 (each stream's output chunks and tokens carried)
        per = self.per_stream
        per.grow(self.slots.size)
        whole = (per.unknown == 0) & (per.tokens > 0)
        total = self._stream_tokens()
        last_t = np.full(self.slots.size, np.nan)
        for slot, t_ms, carried in self._chunk_batches():
            itl = itl_of(slot, t_ms, last_t)
            known = whole[slot]
            weight = np.where(known, carried, 1.0)
            share = weight / np.where(known, per.tokens[slot], per.chunks[slot]) * total[slot]
            yield slot, t_ms, itl, carried, share

    def _unplaced(self) -> tuple[np.ndarray, np.ndarray]:
        """The streams without an output chunk: (their end, s since the run's start; their output tokens)."""
        s = self.streams
        if s.empty or "output_tokens" not in s:
            return np.zeros(0), np.zeros(0)
        self._flow  # noqa: B018
        chunks = self.per_stream.chunks
        slot = self.slots.of(s["stream_id"].to_numpy(np.int64))
        rest = chunks[slot] == 0
        ends_s = ((stream_ends_ns(s) - s["start_ns"].min()) / 1e9).to_numpy()
        return ends_s[rest], s["output_tokens"].fillna(0).astype(float).to_numpy()[rest]

    def output_tokens_at(self) -> tuple[np.ndarray, np.ndarray]:
        """(seconds since the run's start, output tokens): when each stream's output tokens arrived, a
        value per output chunk and per stream without one. Whole arrays: for small runs and tests;
        the charts read :attr:`output_tokens_per_bucket`."""
        t_s, tokens = [], []
        for slot, t_ms, _, _, share in self._placed():
            t_s.append(self._seconds(slot, t_ms))
            tokens.append(share)
        end_s, rest = self._unplaced()
        return np.concatenate([*t_s, end_s]), np.concatenate([*tokens, rest])

    @cached_property
    def _chunks(self) -> _Chunks:
        itl_all = _Gathered(self.rows)
        per_token = np.zeros(0, np.int64)
        n = self.edges_s.size - 1
        tokens_per_bucket = np.zeros(n)
        by_open = LogHistograms()
        open_streams = OpenStreams(self.streams) if not self.streams.empty else None
        known_starts = self.slots.known.size
        for slot, t_ms, itl, carried, share in self._placed():
            has = ~np.isnan(itl)
            itl_all.add(itl[has])
            bucket, inside = self._bucket(self._seconds(slot, t_ms))
            tokens_per_bucket += np.bincount(bucket[inside], weights=share[inside], minlength=n)
            if open_streams is not None and has.any():
                at = slot[has]
                at_ns = np.where(at < known_starts, self.slots.start_ns[np.minimum(at, known_starts - 1)], np.nan)
                by_open.add(open_streams.at(at_ns + t_ms[has] * 1e6), itl[has])
            counts = np.bincount(carried[has & (carried > 0)].astype(np.int64))  # (NaN > 0 is False)
            per_token = np.pad(per_token, (0, max(0, counts.size - per_token.size)))
            per_token[:counts.size] += counts
        end_s, rest = self._unplaced()
        bucket, inside = self._bucket(end_s)
        tokens_per_bucket += np.bincount(bucket[inside], weights=rest[inside], minlength=n)
        return _Chunks(Distribution.of_in_place(itl_all.taken()), per_token, by_open, tokens_per_bucket)

    def _chunk_itl(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per batch of output chunks: (slot, t_ms, ITL, tokens carried)."""
        last_t = np.full(self.slots.size, np.nan)
        for slot, t_ms, carried in self._chunk_batches():
            yield slot, t_ms, itl_of(slot, t_ms, last_t), carried

    @property
    def itl(self) -> Distribution:
        """ITL, per output chunk: its percentiles (``itl_ms`` of the summary), histogram and CDF."""
        return self._chunks.itl

    @property
    def itl_by_open_streams(self) -> LogHistograms:
        """ITL's log histogram per count of streams open when each chunk came."""
        return self._chunks.itl_by_open_streams

    @property
    def output_tokens_per_bucket(self) -> np.ndarray:
        """Output tokens per time bucket, placed as :meth:`output_tokens_at` places them."""
        return self._chunks.output_tokens_per_bucket

    @cached_property
    def itl_per_token_ms(self) -> dict:
        """ITL per token: each chunk's ITL divided by the tokens it carried, counted once per token."""
        counts = self._chunks.tokens_per_chunk
        offsets = np.concatenate([[0], np.cumsum(counts)])
        values, filled = np.empty(int(offsets[-1])), offsets[:-1].copy()
        for _, _, itl, carried in self._chunk_itl():  # each chunk's ITL / k, into the run of its k
            has = ~np.isnan(itl) & (carried > 0)
            if not has.any():
                continue
            k = carried[has].astype(np.int64)
            order = np.argsort(k, kind="stable")
            k, per_token = k[order], (itl[has] / carried[has])[order]
            ks, starts = np.unique(k, return_index=True)
            for kk, a, b in zip(ks.tolist(), starts, np.r_[starts[1:], k.size], strict=True):
                values[filled[kk]:filled[kk] + b - a] = per_token[a:b]
                filled[kk] += b - a
        groups = {k: values[offsets[k]:offsets[k + 1]] for k in np.flatnonzero(counts).tolist()}
        return percentiles_repeated(groups)

    # --- samples for resampling (sseload.views.compare) ---

    def samples(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(stream_id of each, value) of a column's values, NaN dropped: the two columns read whole."""
        frame = self.events.frame(["stream_id", column])
        values = frame[column].to_numpy(np.float64)
        keep = ~np.isnan(values)
        return frame["stream_id"].to_numpy()[keep], values[keep]
