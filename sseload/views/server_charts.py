"""The service's own metrics in the report: the series that explain latency, on the run's time axis
beside TTFT (TTFE for plain SSE) and the streams open (docs/server-metrics.md).

Which series: those :data:`ROLES` name for vLLM, TGI, llama.cpp, SGLang and Triton (requests running
and waiting, KV-cache usage, queue time, batch size), then whatever ``[server_metrics] series``
names. A gauge is drawn as scraped; a counter as its rate per second; a histogram or summary as
its mean over each interval between scrapes (the change of ``_sum`` over that of ``_count``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sseload.record.metrics import ACTIVE_STREAMS, TTFE, TTFT
from sseload.views import results
from sseload.views.chart_render import LINE, MARKS, Chart, Panel, Series

TIME_S = "time since start (s)"
PANELS_PER_CHART = 3
LINES_PER_PANEL = 6
#: (panel title, unit, metric names that fill it: gauges, counters, or histogram families).
ROLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Requests running and waiting (server)", "requests", (
        "vllm:num_requests_running", "vllm:num_requests_waiting", "tgi_queue_size", "llamacpp:requests_processing",
        "llamacpp:requests_deferred", "sglang:num_running_reqs", "sglang:num_queue_reqs",
        "nv_inference_pending_request_count")),
    ("KV-cache usage (server)", "fraction used", (
        "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio",
        "sglang:token_usage")),
    ("Queue time (server, mean per interval)", "s", (
        "vllm:request_queue_time_seconds", "vllm:time_in_queue_requests", "tgi_request_queue_duration")),
    ("Batch size (server)", "requests", ("tgi_batch_current_size", "vllm:iteration_tokens_total")),
)


def charts_of(run: results.Run) -> list[Chart]:
    """The server-metrics charts of a run (none without server_metrics.parquet or a series of note)."""
    frame = run.server_metrics
    if frame is None or frame.empty or run.streams.empty:
        return []
    t0 = int(run.streams["start_ns"].min())
    frame = frame.assign(t_s=(frame["time_ns"] - t0) / 1e9)
    named = list(((run.info.get("scenario") or {}).get("server_metrics") or {}).get("series") or [])
    panels = [p for title, unit, names in ROLES if (p := _panel(frame, title, unit, names)) is not None]
    panels += [p for name in named if (p := _panel(frame, f"{name} (server)", "", (name,))) is not None]
    if not panels:
        return []
    panels.insert(0, _latency_panel(run))
    return [Chart("server_metrics" if i == 0 else f"server_metrics_{i // PANELS_PER_CHART + 1}",
                  panels[i:i + PANELS_PER_CHART]) for i in range(0, len(panels), PANELS_PER_CHART)]


def series_of(frame: pd.DataFrame, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``name``'s lines, by label set: a histogram or summary family's mean per interval, a counter's
    rate per second, a gauge as scraped; {} when the run has no such series."""
    names = frame["name"]
    if (names == f"{name}_sum").any() and (names == f"{name}_count").any():
        sums = _by_labels(frame[names == f"{name}_sum"])
        counts = _by_labels(frame[names == f"{name}_count"])
        out = {}
        for labels, (t, total) in sums.items():
            if labels in counts and len(counts[labels][1]) == len(total):
                with np.errstate(divide="ignore", invalid="ignore"):
                    mean = np.diff(total) / np.diff(counts[labels][1])
                out[labels] = (t[1:], np.where(np.isfinite(mean), mean, np.nan))
        return out
    rows = frame[names == name]
    if rows.empty:
        return {}
    lines = _by_labels(rows)
    if rows["type"].iloc[0] == "counter" or name.endswith("_total"):
        return {labels: (t[1:], _rate(t, v)) for labels, (t, v) in lines.items() if len(t) > 1}
    return lines


def _rate(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A counter's increase per second between scrapes; NaN across a reset (the service restarted)."""
    rise = np.diff(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rise >= 0, rise / np.diff(t), np.nan)


def _by_labels(rows: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {str(labels): (g["t_s"].to_numpy(float), g["value"].to_numpy(float))
            for labels, g in rows.sort_values("t_s").groupby("labels", sort=True)}


def _panel(frame: pd.DataFrame, title: str, unit: str, names: tuple[str, ...]) -> Panel | None:
    series = []
    for name in names:
        lines = series_of(frame, name)
        for labels, (t, v) in list(lines.items())[:LINES_PER_PANEL]:
            label = name if len(lines) == 1 or not labels else f"{name}{{{labels}}}"
            series.append(Series(label, t, v, color=_colour(len(series))))
    if not series:
        return None
    return Panel(title, TIME_S, unit, series[:LINES_PER_PANEL])


PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _latency_panel(run: results.Run, bucket_s: float = 1.0) -> Panel:
    """TTFT (TTFE for plain SSE) p50 and p99 by when streams started, and the streams open."""
    s = run.streams
    metric = TTFT if results.has_tokens(s) else TTFE
    t_s = (s["start_ns"] - s["start_ns"].min()) / 1e9 // bucket_s * bucket_s
    q = s.assign(t_s=t_s).groupby("t_s")[metric.key].quantile([0.5, 0.99]).unstack()
    series = []
    if not q.empty:
        for col, (key, colour) in zip(q.columns, (MARKS[0], MARKS[-1]), strict=True):
            series.append(Series(f"{metric.label} {key}", q.index.to_numpy(float), q[col].to_numpy(float),
                                 color=colour))
    tp = results.throughput(s, None, bucket_s)
    series.append(Series(ACTIVE_STREAMS, tp["t_s"].to_numpy(float), tp["active_streams"].to_numpy(float), "step",
                         color=LINE, right=True))
    return Panel(f"{metric.label} and {ACTIVE_STREAMS}", TIME_S, metric.heading, series, right_label=ACTIVE_STREAMS)
