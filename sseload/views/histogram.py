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
