"""The pieces the report's charts are built of (sseload.views.charts, sseload.views.llm_charts): a
distribution's histogram and CDF, percentiles over time and in ranges of a count, and the run's
times in seconds since its first stream started. A piece takes either the samples themselves
(the streams') or what was kept of them where they are too many to keep (the events': a
sseload.views.distribution.Distribution, a sseload.views.histogram.LogHistograms)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sseload.record.metrics import ACTIVE_STREAMS, Metric
from sseload.views import results
from sseload.views.chart_render import LINE, MARKS, Chart, Mark, Panel, Series
from sseload.views.distribution import Distribution
from sseload.views.histogram import LogHistograms

TIME_S = "time since start (s)"


def title_of(label: str) -> str:
    return label[:1].upper() + label[1:]


def pct_marks(values: np.ndarray, metric: Metric) -> list[Mark]:
    return marks_at(results.percentiles(values), metric)


def marks_at(pct: dict, metric: Metric) -> list[Mark]:
    """Marks at the percentiles MARKS names, of a percentiles dict (sseload.views.distribution.percentiles)."""
    return [Mark(pct[key], f"{key} {metric.quantity(pct[key])}", mark) for key, mark in MARKS]


def distribution(values: np.ndarray, metric: Metric, name: str, title: str | None = None,
                 counted: str = "streams") -> Chart | None:
    """A histogram and a CDF of one metric's samples, both marked at p50, p95 and p99."""
    return distribution_of(Distribution.of(values), metric, name, title, counted)


def distribution_of(drawn: Distribution, metric: Metric, name: str, title: str | None = None,
                    counted: str = "streams") -> Chart | None:
    """:func:`distribution`'s chart of a sample already reduced to what it draws; None when it is empty."""
    if not drawn.stats["count"]:
        return None
    title = title or metric.label
    marks = marks_at(drawn.stats, metric)
    return Chart(name, [
        Panel(f"{title}: histogram", metric.heading, counted,
              [Series(counted, drawn.edges[:-1], drawn.counts.astype(float), "hist", width=np.diff(drawn.edges))],
              marks),
        Panel(f"{title}: CDF", metric.heading, f"fraction of {counted}",
              [Series("CDF", drawn.cdf_x, drawn.cdf_y)], list(marks)),
    ])


def quantiles_by(frame: pd.DataFrame, by: str, column: str, qs=(0.5, 0.95, 0.99)) -> pd.DataFrame:
    return frame.groupby(by)[column].quantile(list(qs)).unstack()


def over_time(run: results.Run, metric: Metric, name: str, bucket_s: float = 1.0) -> Chart | None:
    """A per-stream latency's percentiles by start second, against the streams open."""
    s = run.streams.assign(t_s=start_s(run) // bucket_s * bucket_s)
    if metric.key not in s or s[metric.key].notna().sum() == 0:
        return None
    q = quantiles_by(s, "t_s", metric.key)
    tp = results.throughput(run.streams, None, bucket_s)
    series = [Series(f"{metric.label} {key}", q.index.to_numpy(), q[col].to_numpy(), color=mark)
              for col, (key, mark) in zip(q.columns, MARKS, strict=False)]
    series.append(Series(ACTIVE_STREAMS, tp["t_s"].to_numpy(), tp["active_streams"].to_numpy(float), "step",
                         color=LINE, right=True))
    return Chart(name, [Panel(f"{metric.label} percentiles over time, against {ACTIVE_STREAMS}", TIME_S,
                              metric.heading, series, right_label=ACTIVE_STREAMS)])


CONCURRENCY_BINS = 20


def _range_edges(low: int, high: int, bins: int) -> np.ndarray:
    """Edges of about ``bins`` equal-width ranges of the whole numbers from ``low`` to ``high``."""
    return np.unique(np.linspace(low, high + 1, bins + 1).round())


def quantiles_in_ranges(x: np.ndarray, y: np.ndarray, bins: int = CONCURRENCY_BINS,
                        qs=(0.5, 0.95, 0.99)) -> tuple[np.ndarray, pd.DataFrame]:
    """Percentiles of ``y`` in equal-width ranges of the whole numbers ``x`` (streams open, prompt
    tokens): each range's middle, and its quantiles (NaN where it has no sample: a gap in a line)."""
    edges = _range_edges(x.min(), x.max(), bins)
    level = pd.cut(x, bins=edges, right=False)
    q = pd.DataFrame({"level": level, "y": y}).groupby("level", observed=False)["y"].quantile(list(qs)).unstack()
    return np.array([iv.mid for iv in q.index]), q


def histograms_in_ranges(hist: LogHistograms, bins: int = CONCURRENCY_BINS,
                         qs=(0.5, 0.95, 0.99)) -> tuple[np.ndarray, pd.DataFrame]:
    """:func:`quantiles_in_ranges` of values kept as a log histogram per whole number (within 1.2%)."""
    keys = hist.keys()
    edges = _range_edges(keys.min(), keys.max(), bins)
    ranges = pd.IntervalIndex.from_breaks(edges, closed="left")
    groups = [keys[(keys >= r.left) & (keys < r.right)] for r in ranges]
    return np.asarray(ranges.mid), pd.DataFrame(hist.quantiles(qs, groups), index=ranges, columns=list(qs))


def by_concurrency(metric: Metric, x: np.ndarray, y: np.ndarray, title: str) -> Panel:
    """A panel of ``metric``'s p50, p95 and p99 against the streams open (``x``) as each sample was taken."""
    return by_concurrency_of(metric, *quantiles_in_ranges(x, y), title)


def by_concurrency_of(metric: Metric, mid: np.ndarray, q: pd.DataFrame, title: str) -> Panel:
    """:func:`by_concurrency`'s panel of each range's middle and quantiles (:func:`quantiles_in_ranges`)."""
    return Panel(title, f"{ACTIVE_STREAMS} at start", metric.heading,
                 [Series(f"{metric.label} {key}", mid, q[col].to_numpy(), "points", color=mark)
                  for col, (key, mark) in zip(q.columns, MARKS, strict=False)],
                 note="ranges without streams are gaps in the lines")


def start_s(run: results.Run) -> pd.Series:
    s = run.streams
    return (s["start_ns"] - s["start_ns"].min()) / 1e9


def end_s(streams: pd.DataFrame) -> np.ndarray:
    """Each stream's end, in seconds since the run's first stream started."""
    return ((results.stream_ends_ns(streams) - streams["start_ns"].min()) / 1e9).to_numpy()
