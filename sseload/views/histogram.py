"""A latency histogram that is small, exact to add and fast to merge: the live numbers' (sseload.views.live),
summed across ticks, windows and workers, and read by the web UI tab and Prometheus."""

from __future__ import annotations

import math

import numpy as np


class LogHistogram:
    """Counts of values (ms) in log-spaced bins: BINS_PER_DECADE per decade from LOW_MS to HIGH_MS,
    with everything below in the first bin and above in the last. A percentile is its bin's
    geometric middle: within half a bin (0.58%) of the true one. The exact min and max are kept."""

    BINS_PER_DECADE = 200
    LOW_MS = 1e-3
    HIGH_MS = 1e6  # 1,000 s: past the gateway's 40 s and any feed's gap
    N = int(round(math.log10(HIGH_MS / LOW_MS) * BINS_PER_DECADE))
    #: Bin i holds values in [EDGES[i], EDGES[i + 1]).
    EDGES = LOW_MS * 10.0 ** (np.arange(N + 1) / BINS_PER_DECADE)
    MIDDLES = np.sqrt(EDGES[:-1] * EDGES[1:])
    _UPPER = np.append(EDGES[:-1], np.inf)  # the last bin also holds everything above HIGH_MS

    __slots__ = ("counts", "total", "sum", "min", "max")

    def __init__(self) -> None:
        self.counts = np.zeros(self.N, dtype=np.int64)
        self.total = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    @classmethod
    def index(cls, values: np.ndarray) -> np.ndarray:
        """Each value's bin (values are finite: gaps, latencies)."""
        i = np.log10(np.maximum(values, cls.LOW_MS))
        i -= np.log10(cls.LOW_MS)
        i *= cls.BINS_PER_DECADE
        return np.clip(i, 0, cls.N - 1).astype(np.intp)

    def add(self, values: np.ndarray | list[float]) -> None:
        values = np.asarray(values, dtype=np.float64)
        if not values.size:
            return
        self.counts += np.bincount(self.index(values), minlength=self.N)
        self.total += values.size
        self.sum += float(values.sum())
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def merge(self, other: LogHistogram) -> None:
        self.counts += other.counts
        self.total += other.total
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float | None:
        """The p-th percentile (0-100); p 0 and 100 are the exact min and max. None without values."""
        if not self.total:
            return None
        if p >= 100:
            return self.max
        if p <= 0:
            return self.min
        rank = max(1, math.ceil(p / 100 * self.total))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        return float(min(max(self.MIDDLES[i], self.min), self.max))

    def count_at_most(self, limits_ms: list[float]) -> list[int]:
        """Values in bins wholly at or below each limit (Prometheus's cumulative ``le`` buckets)."""
        cum = np.concatenate([[0], np.cumsum(self.counts)])
        return [int(cum[np.searchsorted(self._UPPER, limit, side="right") - 1]) for limit in limits_ms]

    def to_wire(self) -> list:
        """[bins, counts, total, sum, min, max] in plain lists (msgpack): only the bins used."""
        used = np.flatnonzero(self.counts)
        return [used.tolist(), self.counts[used].tolist(), self.total, self.sum,
                self.min if self.total else None, self.max if self.total else None]

    @classmethod
    def from_wire(cls, wire: list) -> LogHistogram:
        h = cls()
        bins, counts, h.total, h.sum, low, high = wire
        if bins:
            np.add.at(h.counts, np.asarray(bins, dtype=np.intp), np.asarray(counts, dtype=np.int64))
        h.min = math.inf if low is None else low
        h.max = -math.inf if high is None else high
        return h


class LogHistograms:
    """Rows of log-spaced histograms, one per key (a second of the run, a count of streams open): what
    a chart's percentiles over time or against a count are read from when the values are too many to
    keep (sseload.views.event_facts). BINS_PER_DECADE per decade from LogHistogram.LOW_MS to its
    HIGH_MS, and a bin of its own for the values under LOW_MS (0: events read together). A percentile
    is its bin's geometric middle (within 1.2% of the true one: a chart's resolution), 0 in that first
    bin. Memory: 4 bytes a bin, 3.6 kB a row (an hour of seconds: 13 MB)."""

    BINS_PER_DECADE = 100
    N = 1 + int(round(math.log10(LogHistogram.HIGH_MS / LogHistogram.LOW_MS) * BINS_PER_DECADE))
    #: Bin i >= 1 holds values in [EDGES[i - 1], EDGES[i]); the last also everything above HIGH_MS.
    EDGES = LogHistogram.LOW_MS * 10.0 ** (np.arange(N) / BINS_PER_DECADE)
    VALUES = np.concatenate([[0.0], np.sqrt(EDGES[:-1] * EDGES[1:])])

    def __init__(self) -> None:
        self.counts = np.zeros((0, self.N), dtype=np.int32)

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Count each value (finite, >= 0) in its key's row (a whole number >= 0)."""
        if not keys.size:
            return
        rows = int(keys.max()) + 1
        if rows > len(self.counts):
            grown = np.zeros((max(rows, 2 * len(self.counts)), self.N), dtype=np.int32)
            grown[:len(self.counts)] = self.counts
            self.counts = grown
        with np.errstate(divide="ignore", invalid="ignore"):
            i = np.floor(np.log10(values / LogHistogram.LOW_MS) * self.BINS_PER_DECADE)
            bins = np.where(values < LogHistogram.LOW_MS, 0, np.clip(i, 0, self.N - 2).astype(np.intp) + 1)
        low = int(keys.min())
        cells = (rows - low) * self.N
        if cells <= 4 * keys.size:  # the keys' span counted at once (a batch's seconds are near each other)
            counted = np.bincount((keys - low).astype(np.intp) * self.N + bins, minlength=cells)
            self.counts[low:rows] += counted.reshape(rows - low, self.N).astype(np.int32)
        else:
            np.add.at(self.counts.reshape(-1), keys.astype(np.intp) * self.N + bins, 1)

    def keys(self) -> np.ndarray:
        """The keys with values, in order."""
        return np.flatnonzero(self.counts.any(axis=1))

    def quantiles_by_key(self, qs: tuple[float, ...], rows_at_once: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(the keys with values; the quantiles ``qs`` (0-1) of each one's values, a row each)."""
        keys = self.keys()
        out = np.empty((keys.size, len(qs)))
        for a in range(0, keys.size, rows_at_once):
            cum = np.cumsum(self.counts[keys[a:a + rows_at_once]], axis=1, dtype=np.int64)
            for j, q in enumerate(qs):
                rank = np.maximum(1, np.ceil(q * cum[:, -1])).astype(np.int64)
                out[a:a + rows_at_once, j] = self.VALUES[(cum < rank[:, None]).sum(axis=1)]
        return keys, out

    def quantiles(self, qs: tuple[float, ...], groups: list[np.ndarray]) -> np.ndarray:
        """The quantiles ``qs`` (0-1) of each group of keys' values together: one row per group, NaN for
        a group without values."""
        out = np.full((len(groups), len(qs)), np.nan)
        for g, keys in enumerate(groups):
            counts = self.counts[keys[keys < len(self.counts)]].sum(axis=0, dtype=np.int64)
            total = int(counts.sum())
            if total:
                cum = np.cumsum(counts)
                for j, q in enumerate(qs):
                    out[g, j] = self.VALUES[int(np.searchsorted(cum, max(1, math.ceil(q * total))))]
        return out
