"""The pieces the report's charts are built of (sseload.views.charts, sseload.views.llm_charts): a
distribution's histogram and CDF, percentiles over time and in ranges of a count, and the run's
times in seconds since its first stream started."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sseload.record.metrics import ACTIVE_STREAMS, Metric
from sseload.views import results
from sseload.views.chart_render import LINE, MARKS, Chart, Mark, Panel, Series

TIME_S = "time since start (s)"


def title_of(label: str) -> str:
    return label[:1].upper() + label[1:]


def pct_marks(values: np.ndarray, metric: Metric) -> list[Mark]:
    pct = results.percentiles(values)
    return [Mark(pct[key], f"{key} {metric.quantity(pct[key])}", mark) for key, mark in MARKS]


def distribution(values: np.ndarray, metric: Metric, name: str, title: str | None = None,
                  counted: str = "streams") -> Chart | None:
    """A histogram and a CDF of one metric's samples, both marked at p50, p95 and p99."""
    values = values[~np.isnan(values)] if values.size else values
    if values.size == 0:
        return None
    title = title or metric.label
    counts, edges = np.histogram(values, bins=min(100, max(10, values.size // 20)))
    xs = np.sort(values)
    step = max(1, xs.size // 2000)  # a CDF of at most ~2,000 points draws the same
    cdf_x, cdf_y = xs[::step], (np.arange(1, xs.size + 1) / xs.size)[::step]
    marks = pct_marks(values, metric)
    return Chart(name, [
        Panel(f"{title}: histogram", metric.heading, counted,
              [Series(counted, edges[:-1], counts.astype(float), "hist", width=np.diff(edges))], marks),
        Panel(f"{title}: CDF", metric.heading, f"fraction of {counted}",
              [Series("CDF", cdf_x, cdf_y)], list(marks)),
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


def quantiles_in_ranges(x: np.ndarray, y: np.ndarray, bins: int = CONCURRENCY_BINS,
                        qs=(0.5, 0.95, 0.99)) -> tuple[np.ndarray, pd.DataFrame]:
    """Percentiles of ``y`` in equal-width ranges of the whole numbers ``x`` (streams open, prompt
    tokens): each range's middle, and its quantiles (NaN where it has no sample: a gap in a line)."""
    edges = np.unique(np.linspace(x.min(), x.max() + 1, bins + 1).round())
    level = pd.cut(x, bins=edges, right=False)
    q = pd.DataFrame({"level": level, "y": y}).groupby("level", observed=False)["y"].quantile(list(qs)).unstack()
    return np.array([iv.mid for iv in q.index]), q


def by_concurrency(metric: Metric, x: np.ndarray, y: np.ndarray, title: str) -> Panel:
    """A panel of ``metric``'s p50, p95 and p99 against the streams open (``x``) as each sample was taken."""
    mid, q = quantiles_in_ranges(x, y)
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


def event_s(streams: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Each event's read time, in seconds since the run's first stream started."""
    starts = streams.set_index("stream_id")["start_ns"]
    t0 = streams["start_ns"].min()
    return (events["stream_id"].map(starts).to_numpy() - t0) / 1e9 + events["t_ms"].to_numpy() / 1e3
