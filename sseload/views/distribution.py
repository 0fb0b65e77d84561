"""A sample's distribution, computed exactly from its values: the percentiles every summary number
and chart mark uses (:func:`percentiles`), and the histogram and CDF a distribution chart draws
(:class:`Distribution`).

The events' samples are as large as the events table (a run of 100 M events has 100 M gaps), so
each function here can work on a sample in place: :func:`percentiles_in_place` reorders its array
rather than copying it, :func:`percentiles_repeated` gives the percentiles of a sample in which
values count several times without repeating them. Both give what :func:`percentiles` of the same
values gives (numpy's linear interpolation), bit for bit but for the mean of a repeated sample,
whose sum is added in another order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PERCENTILES = (50, 90, 95, 99)
#: Values summed at a time where a whole sample would cost a copy (a block of a large sample).
BLOCK = 1 << 20


def percentiles(values: pd.Series | np.ndarray, ps=PERCENTILES) -> dict[str, float | None]:
    """``p50`` ... (numpy's linear interpolation), ``max``, ``mean`` and ``count`` of the values, NaN dropped."""
    arr = np.asarray(values, dtype=np.float64)
    return percentiles_in_place(arr[~np.isnan(arr)], ps)  # (a copy: it may be reordered)


def percentiles_in_place(arr: np.ndarray, ps=PERCENTILES) -> dict[str, float | None]:
    """:func:`percentiles` of ``arr`` (float64, no NaN), which is reordered: no copy of it is made.

    The mean is taken before anything moves, so it adds the values in the order given, as
    :func:`percentiles` does."""
    top = float(arr.max()) if arr.size else None
    mean = float(arr.mean()) if arr.size else None
    at = np.percentile(arr, list(ps), overwrite_input=True) if arr.size else [None] * len(ps)
    out: dict[str, float | None] = {f"p{p}": (float(v) if v is not None else None) for p, v in zip(ps, at, strict=True)}
    out |= {"max": top, "mean": mean, "count": int(arr.size)}
    return out


def percentiles_repeated(groups: dict[int, np.ndarray], ps=PERCENTILES) -> dict[str, float | None]:
    """:func:`percentiles` of the sample in which each value of ``groups[k]`` counts ``k`` times, without
    repeating it: what ``percentiles(np.repeat(values, k))`` gives. Each group (float64, no NaN) is
    sorted in place; the value at a rank of the repeated sample is found by bisecting the values'
    order (their float64 bits, 64 steps), counting each group's values below with a binary search."""
    groups = {k: arr for k, arr in groups.items() if arr.size and k > 0}
    n = sum(k * arr.size for k, arr in groups.items())
    if not n:
        return percentiles_in_place(np.empty(0), ps)
    for arr in groups.values():
        arr.sort()

    def at(rank: int) -> float:
        """The value at ``rank`` (from 0) of the repeated sample, sorted."""
        low = min(_ordered(arr[0]) for arr in groups.values())
        high = max(_ordered(arr[-1]) for arr in groups.values())
        while low < high:  # the least value with more than ``rank`` values at or below it
            mid = (low + high) // 2
            x = _unordered(mid)
            below = sum(k * int(np.searchsorted(arr, x, side="right")) for k, arr in groups.items())
            if below > rank:
                high = mid
            else:
                low = mid + 1
        return _unordered(low)

    q = np.true_divide(np.asarray(ps, dtype=np.float64), 100)
    virtual = (n - 1) * q  # numpy's "linear" method, as np.percentile computes it
    out: dict[str, float | None] = {}
    for p, v in zip(ps, virtual, strict=True):
        prev = n - 1 if v >= n - 1 else int(np.floor(v))
        nxt = n - 1 if v >= n - 1 else prev + 1
        gamma = v - np.floor(v) if v < n - 1 else v - (n - 1)
        a, b = np.float64(at(prev)), np.float64(at(nxt))
        diff = b - a
        out[f"p{p}"] = float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)
    total = sum(float(k) * float(arr.sum()) for k, arr in groups.items())
    out |= {"max": float(max(arr[-1] for arr in groups.values())), "mean": total / n, "count": int(n)}
    return out


_SIGN = np.int64(-0x8000000000000000)


def _ordered(x: float) -> int:
    """A float64 as an integer in the same order (its bits; negative values' turned around)."""
    bits = int(np.float64(x).view(np.int64))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF) - 1


def _unordered(key: int) -> float:
    """The float64 of an :func:`_ordered` integer."""
    bits = key if key >= 0 else (-key - 1) | int(_SIGN)
    return float(np.int64(bits).view(np.float64))


@dataclass
class Distribution:
    """A sample as its chart draws it: its percentiles (:func:`percentiles`), a histogram of equal bins
    (between 10 and 100, a bin per 20 values) and its CDF at about 2,000 points."""

    stats: dict[str, float | None]
    counts: np.ndarray
    edges: np.ndarray
    cdf_x: np.ndarray
    cdf_y: np.ndarray

    CDF_POINTS = 2000  # a CDF of more points draws the same

    @classmethod
    def of(cls, values: np.ndarray) -> Distribution:
        """Of ``values`` (NaN dropped), left as they are."""
        arr = np.asarray(values, dtype=np.float64)
        return cls.of_in_place(arr[~np.isnan(arr)])

    @classmethod
    def of_in_place(cls, arr: np.ndarray) -> Distribution:
        """Of ``arr`` (float64, no NaN), which is sorted in place: no copy of it is made."""
        if not arr.size:
            return cls(percentiles_in_place(arr), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
        in_order = {"max": float(arr.max()), "mean": float(arr.mean())}  # the mean adds the values as given
        arr.sort()
        counts, edges = np.histogram(arr, bins=min(100, max(10, arr.size // 20)))
        step = max(1, arr.size // cls.CDF_POINTS)
        cdf_x, cdf_y = arr[::step].copy(), np.arange(1, arr.size + 1, step) / arr.size
        return cls({**percentiles_in_place(arr), **in_order}, counts, edges, cdf_x, cdf_y)


def log_histogram(arr: np.ndarray, bins: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``arr`` (no NaN, not empty) on ``bins`` log-spaced edges from its least positive value
    (at least 0.001) to its largest (at least ten times that); what lies below counts in the first bin.
    Taken a block at a time: no copy of a large sample is made."""
    blocks = [arr[i:i + BLOCK] for i in range(0, arr.size, BLOCK)]
    positive = [block.min(where=block > 0, initial=np.inf) for block in blocks]
    low = max(min(positive) if min(positive) < np.inf else 0.001, 0.001)
    edges = np.logspace(np.log10(low), np.log10(max(float(arr.max()), low * 10)), bins)
    counts = sum(np.histogram(np.clip(block, low, None), bins=edges)[0] for block in blocks)
    return counts, edges
