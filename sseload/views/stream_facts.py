"""What is added up per stream over its events, a batch at a time (sseload.views.event_facts):
a stream's events may come in any batches and shards, apart from each other, but always in their
order of arrival within the stream. Each stream has a slot (:class:`StreamSlots`) in the arrays of
its facts (:class:`PerStream`), and ITL carries each stream's last output chunk from one batch to
the next (:func:`itl_of`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sseload.record.records import BUFFERED_MIN_EVENTS


class StreamSlots:
    """Each stream's slot in the per-stream arrays: the streams frame's, by ``stream_id``; a stream
    the frame lacks (its shard cut) gets the next free slot when its first event is read."""

    def __init__(self, streams: pd.DataFrame) -> None:
        ids = streams["stream_id"].to_numpy(np.int64) if "stream_id" in streams else np.zeros(0, np.int64)
        self.known, first = np.unique(ids, return_index=True)
        self.start_ns = streams["start_ns"].to_numpy(np.int64)[first] if "start_ns" in streams else first * 0
        self._more: dict[int, int] = {}

    @property
    def size(self) -> int:
        return self.known.size + len(self._more)

    @property
    def ids(self) -> np.ndarray:
        """The stream_id of each slot."""
        return np.concatenate([self.known, np.fromiter(self._more, np.int64, len(self._more))])

    def of(self, stream_id: np.ndarray) -> np.ndarray:
        """Each event's slot; looked up once per run of one stream's events."""
        starts = np.flatnonzero(np.r_[True, stream_id[1:] != stream_id[:-1]]) if stream_id.size else stream_id
        if starts.size * 2 > stream_id.size:
            return self._of(stream_id)
        return np.repeat(self._of(stream_id[starts]), np.diff(np.r_[starts, stream_id.size]))

    def _of(self, stream_id: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.known, stream_id)
        if self.known.size:
            pos = np.minimum(pos, self.known.size - 1)
            found = self.known[pos] == stream_id
        else:
            found = np.zeros(stream_id.size, dtype=bool)
        if found.all():
            return pos
        more, index = np.unique(stream_id[~found], return_inverse=True)
        for sid in more.tolist():
            self._more.setdefault(sid, self.known.size + len(self._more))
        pos = pos.copy()
        pos[~found] = np.array([self._more[sid] for sid in more.tolist()], dtype=np.int64)[index]
        return pos


class PerStream:
    """Each stream's facts, added up over its events in whatever batches they come: a batch's runs of
    one stream's events are reduced (``reduceat``), then added to the stream's slot."""

    FIELDS = {"events": 0, "t_min": np.inf, "t_max": -np.inf, "gap_max": np.nan, "gap_sum": 0.0, "gaps": 0,
              "chunks": 0, "tokens": 0.0, "unknown": 0}

    def __init__(self) -> None:
        for name, fill in self.FIELDS.items():
            setattr(self, name, np.full(0, fill, dtype=np.int64 if isinstance(fill, int) else np.float64))

    def grow(self, size: int) -> None:
        """Room for ``size`` slots at least (a run's streams at once; more, twice as many at a time)."""
        if size > self.events.size:
            size = max(size, 2 * self.events.size) if self.events.size else size
            for name, fill in self.FIELDS.items():
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.full(size - old.size, fill, dtype=old.dtype)]))

    def add(self, slot: np.ndarray, t_ms: np.ndarray | None = None, gap_ms: np.ndarray | None = None,
            output: np.ndarray | None = None, tokens: np.ndarray | None = None) -> None:
        """One batch's events (each stream's in arrival order): its ``slot``s and whichever columns it has."""
        if not slot.size:
            return
        self.grow(int(slot.max()) + 1)
        starts = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
        at = slot[starts]
        np.add.at(self.events, at, np.diff(np.r_[starts, slot.size]))
        if t_ms is not None:
            np.minimum.at(self.t_min, at, np.minimum.reduceat(t_ms, starts))
            np.maximum.at(self.t_max, at, np.maximum.reduceat(t_ms, starts))
        if gap_ms is not None:
            known = ~np.isnan(gap_ms)
            np.fmax.at(self.gap_max, at, np.fmax.reduceat(gap_ms, starts))
            np.add.at(self.gap_sum, at, np.add.reduceat(np.where(known, gap_ms, 0.0), starts))
            np.add.at(self.gaps, at, np.add.reduceat(known.astype(np.int64), starts))
        if output is not None:
            carried = tokens if tokens is not None else np.full(slot.size, np.nan)
            np.add.at(self.chunks, at, np.add.reduceat(output.astype(np.int64), starts))
            np.add.at(self.tokens, at, np.add.reduceat(np.where(output & ~np.isnan(carried), carried, 0.0), starts))
            np.add.at(self.unknown, at, np.add.reduceat((output & np.isnan(carried)).astype(np.int64), starts))

    def buffered(self) -> int:
        """Streams of BUFFERED_MIN_EVENTS or more events that all arrived in one read (one ``t_ms``):
        a buffering proxy or server held them and let them go together (sseload.record.records)."""
        return int(((self.events >= BUFFERED_MIN_EVENTS) & (self.t_min == self.t_max)).sum())

    def gaps_frame(self, ids: np.ndarray) -> pd.DataFrame:
        """Per stream with events (``ids``: each slot's stream_id), by stream_id: the largest gap (the
        worst stall a user saw) and the mean gap."""
        has = np.flatnonzero(self.events > 0)
        has = has[np.argsort(ids[has], kind="stable")]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.gaps[has] > 0, self.gap_sum[has] / self.gaps[has], np.nan)
        index = pd.Index(ids[has], name="stream_id")
        return pd.DataFrame({"max_gap_ms": self.gap_max[has], "mean_gap_ms": mean}, index=index)


def itl_of(slot: np.ndarray, t_ms: np.ndarray, last_t: np.ndarray) -> np.ndarray:
    """ITL of a batch's output chunks: each one's ``t_ms`` minus its stream's output chunk before (NaN
    for a stream's first), ``last_t`` holding each slot's last output chunk before the batch, and
    after it on return. A stream's chunks are in arrival order; they need not be together."""
    starts = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]]) if slot.size else np.zeros(0, np.intp)
    together = np.unique(slot[starts]).size == starts.size
    order = None if together else np.argsort(slot, kind="stable")
    s, t = (slot, t_ms) if together else (slot[order], t_ms[order])
    before = np.empty_like(t)
    before[1:] = t[:-1]
    first = np.r_[True, s[1:] != s[:-1]] if s.size else np.zeros(0, bool)
    before[first] = last_t[s[first]]
    last = np.r_[s[1:] != s[:-1], True] if s.size else np.zeros(0, bool)
    last_t[s[last]] = t[last]
    if together:
        return t - before
    itl = np.empty_like(t)
    itl[order] = t - before
    return itl
