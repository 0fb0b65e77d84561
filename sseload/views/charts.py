"""Charts of a run, each described once (a :class:`~sseload.views.chart_render.Chart`) and drawn
twice by sseload.views.chart_render: a PNG for summary.md and an interactive ECharts chart in
report.html.

Every chart function takes a loaded :class:`sseload.views.results.Run` and returns its Chart, or None
when the run has nothing to draw (e.g. no events; for the token charts, no OpenAI-style streams).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sseload.protocol.outcomes import Outcome, color  # noqa: E402
from sseload.record.metrics import (  # noqa: E402
    ACTIVE_STREAMS,
    BYTES_PER_S,
    DURATION,
    EVENTS_PER_S,
    GAP,
    GOODPUT,
    ITL,
    OUTPUT_TOKENS_PER_S,
    STREAMS_PER_S,
    TPOT,
    TTFE,
    TTFT,
    Metric,
)
from sseload.views import results  # noqa: E402
from sseload.views.chart_render import LINE, MARKS, Chart, Mark, Panel, Series, echarts_options, png  # noqa: E402, F401

TIME_S = "time since start (s)"


def _title(label: str) -> str:
    return label[:1].upper() + label[1:]


def _pct_marks(values: np.ndarray, metric: Metric) -> list[Mark]:
    pct = results.percentiles(values)
    return [Mark(pct[key], f"{key} {metric.quantity(pct[key])}", mark) for key, mark in MARKS]


# --- the charts ---

def _distribution(values: np.ndarray, metric: Metric, name: str, title: str | None = None,
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
    marks = _pct_marks(values, metric)
    return Chart(name, [
        Panel(f"{title}: histogram", metric.heading, counted,
              [Series(counted, edges[:-1], counts.astype(float), "hist", width=np.diff(edges))], marks),
        Panel(f"{title}: CDF", metric.heading, f"fraction of {counted}",
              [Series("CDF", cdf_x, cdf_y)], list(marks)),
    ])


def ttfe_distribution(run: results.Run) -> Chart | None:
    return _distribution(run.streams["ttfe_ms"].dropna().to_numpy(), TTFE, "ttfe", title="Time to first event")


def _quantiles_by(frame: pd.DataFrame, by: str, column: str, qs=(0.5, 0.95, 0.99)) -> pd.DataFrame:
    return frame.groupby(by)[column].quantile(list(qs)).unstack()


def ttfe_over_time(run: results.Run, bucket_s: float = 1.0) -> Chart | None:
    s = run.streams.assign(t_s=_rel_s(run) // bucket_s * bucket_s)
    if s["ttfe_ms"].notna().sum() == 0:
        return None
    q = _quantiles_by(s, "t_s", "ttfe_ms")
    tp = results.throughput(run.streams, None, bucket_s)
    series = [Series(f"{TTFE.label} {key}", q.index.to_numpy(), q[col].to_numpy(), color=mark)
              for col, (key, mark) in zip(q.columns, MARKS, strict=False)]
    series.append(Series(ACTIVE_STREAMS, tp["t_s"].to_numpy(), tp["active_streams"].to_numpy(float), "step",
                         color=LINE, right=True))
    return Chart("ttfe_over_time", [Panel(f"{TTFE.label} percentiles over time, against {ACTIVE_STREAMS}", TIME_S,
                                          TTFE.heading, series, right_label=ACTIVE_STREAMS)])


def gaps(run: results.Run, bucket_s: float = 1.0) -> Chart | None:
    ev = run.events
    if ev is None or ev["gap_ms"].notna().sum() == 0:
        return None
    gap = ev["gap_ms"].dropna().to_numpy()
    low = max(gap[gap > 0].min() if (gap > 0).any() else 0.001, 0.001)
    edges = np.logspace(np.log10(low), np.log10(max(gap.max(), low * 10)), 80)
    counts, _ = np.histogram(np.clip(gap, low, None), bins=edges)
    t = _event_s(run.streams, ev)
    frame = pd.DataFrame({"t_s": t // bucket_s * bucket_s, "gap_ms": ev["gap_ms"].to_numpy()}).dropna()
    q = _quantiles_by(frame, "t_s", "gap_ms", (0.5, 0.99))
    return Chart("gaps", [
        Panel("Inter-event gaps (log scale)", GAP.heading, "events",
              [Series("events", edges[:-1], counts.astype(float), "hist", width=np.diff(edges))],
              _pct_marks(gap, GAP), xlog=True, ylog=True),
        Panel(f"{_title(GAP.label)} percentiles over time", TIME_S, GAP.heading,
              [Series(f"{GAP.label} p50", q.index.to_numpy(), q[0.5].to_numpy(), color=MARKS[0][1]),
               Series(f"{GAP.label} p99", q.index.to_numpy(), q[0.99].to_numpy(), color=MARKS[2][1])]),
    ])


def durations(run: results.Run) -> Chart | None:
    """Stream durations. The gateway's limit is drawn when streams come near it; when all of them
    end far sooner, the axis stays on the streams (a 40 s line would squeeze 2 s of bars into a sliver)
    and the title says where the limit is."""
    d = run.streams["duration_ms"].dropna().to_numpy() / 1000.0
    if d.size == 0:
        return None
    limit = run.limit_s
    near = d.max() >= 0.5 * limit
    counts, edges = np.histogram(d, bins=80)
    marks = [Mark(limit, f"gateway limit {limit:g} s", "#d62728")] if near else []
    note = "" if near else f"gateway limit {limit:g} s, off the axis: the longest stream took {d.max():.3g} s"
    return Chart("durations", [Panel("Stream duration", f"{DURATION.label} (s)", "streams",
                                     [Series("streams", edges[:-1], counts.astype(float), "hist",
                                             width=np.diff(edges))], marks, note=note)])


def outcomes_over_time(run: results.Run) -> Chart | None:
    frame = results.frame_outcomes_over_time(run.streams)
    if frame.empty:
        return None
    x = frame.index.to_numpy(float)
    return Chart("outcomes_over_time", [Panel(
        "Stream outcomes over time (by end time)", TIME_S, "streams per s",
        [Series(str(c), x, frame[c].to_numpy(float), "area", color=color(c)) for c in frame.columns])])


def _scaled_bytes(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Bytes/s in the unit that reads best: B/s, kB/s, MB/s or GB/s (decimal, as network rates are)."""
    peak = float(np.nanmax(values)) if values.size else 0.0
    for factor, unit in ((1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")):
        if peak >= factor:
            return values / factor, unit
    return values, "B/s"


def throughput(run: results.Run) -> Chart | None:
    tp = results.throughput(run.streams, run.events)
    if tp.empty:
        return None
    panels = []
    for metric in (STREAMS_PER_S, EVENTS_PER_S, BYTES_PER_S):
        values = tp[metric.key].to_numpy(float) if metric.key in tp else np.empty(0)  # the summary's keys
        unit = metric.unit
        if metric is BYTES_PER_S:
            values, unit = _scaled_bytes(values)
        series = [Series(metric.label, tp["t_s"].to_numpy(float), values, "step")] if values.size else []
        panels.append(Panel(_title(metric.label), TIME_S, unit, series))
    return Chart("throughput", panels)


def ttfe_by_body_size(run: results.Run) -> Chart | None:
    s = run.streams.dropna(subset=["ttfe_ms"])
    if s["body_bytes"].nunique() < 2:
        return None
    q = _quantiles_by(s, "body_bytes", "ttfe_ms")
    return Chart("ttfe_by_body_size", [Panel(
        f"{TTFE.label} against request body size", "request body (bytes)", TTFE.heading,
        [Series(f"{TTFE.label} {key}", q.index.to_numpy(float), q[col].to_numpy(), "points", color=mark)
         for col, (key, mark) in zip(q.columns, MARKS, strict=False)], xlog=True)])


CONCURRENCY_BINS = 20


def latency_by_concurrency(run: results.Run) -> Chart | None:
    """TTFE percentiles by how many streams were active when a stream started (ramps, steps): equal-width
    ranges of the count, a point per range with streams and a break in the line where one has none."""
    s = run.streams.dropna(subset=["ttfe_ms"])
    if s.empty:
        return None
    active = results.active_streams_at(run.streams, s["start_ns"].to_numpy())
    if np.unique(active).size < 3:
        return None
    edges = np.unique(np.linspace(active.min(), active.max() + 1, CONCURRENCY_BINS + 1).round())
    level = pd.cut(active, bins=edges, right=False)
    q = (s.assign(level=level).groupby("level", observed=False)["ttfe_ms"]
         .quantile([0.5, 0.95, 0.99]).unstack())
    mid = np.array([iv.mid for iv in q.index])
    return Chart("latency_by_concurrency", [Panel(
        "Latency against concurrency", f"{ACTIVE_STREAMS} at start", TTFE.heading,
        [Series(f"{TTFE.label} {key}", mid, q[col].to_numpy(), "points", color=mark)
         for col, (key, mark) in zip(q.columns, MARKS, strict=False)],
        note="ranges without streams are gaps in the lines")])


# --- OpenAI-style streams (sseload.record.tokens): drawn only when the run has token data ---

def ttft_distribution(run: results.Run) -> Chart | None:
    if not results.has_tokens(run.streams):
        return None
    return _distribution(run.streams["ttft_ms"].dropna().to_numpy(), TTFT, "ttft")


def tpot_distribution(run: results.Run) -> Chart | None:
    if not results.has_tokens(run.streams):
        return None
    s = run.streams
    return _distribution(s.loc[s["outcome"] == Outcome.OK, "tpot_ms"].dropna().to_numpy(), TPOT, "tpot")


def itl_distribution(run: results.Run) -> Chart | None:
    if not results.has_tokens(run.streams):
        return None
    chunks = results.output_chunks(run.events)
    itl = results.itl_ms(chunks).dropna().to_numpy() if chunks is not None else np.empty(0)
    return _distribution(itl, ITL, "itl", counted="gaps between output chunks")


def _rel_s(run: results.Run) -> pd.Series:
    s = run.streams
    return (s["start_ns"] - s["start_ns"].min()) / 1e9


def _end_s(streams: pd.DataFrame) -> np.ndarray:
    """Each stream's end, in seconds since the run's first stream started."""
    return ((results.stream_ends_ns(streams) - streams["start_ns"].min()) / 1e9).to_numpy()


def _event_s(streams: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Each event's read time, in seconds since the run's first stream started."""
    starts = streams.set_index("stream_id")["start_ns"]
    t0 = streams["start_ns"].min()
    return (events["stream_id"].map(starts).to_numpy() - t0) / 1e9 + events["t_ms"].to_numpy() / 1e3


def _chunk_tokens(chunks: pd.DataFrame) -> pd.Series:
    """The output tokens each output chunk carried (events' ``tokens``, record.tokens); NaN where unknown."""
    return chunks["tokens"].astype(float) if "tokens" in chunks else pd.Series(np.nan, index=chunks.index)


def _tokens_at(run: results.Run) -> tuple[np.ndarray, np.ndarray]:
    """(seconds since the run's start, output tokens): when each stream's output tokens arrived.

    Each stream's count (streams' ``output_tokens``, as the summary counts them) is spread over its
    chunks carrying output, by what each carried (:func:`_chunk_tokens`) or, where that is unknown,
    in equal shares. Without events, or for a stream without output chunks, all of it at its end.
    """
    s = run.streams
    tokens = s.set_index("stream_id")["output_tokens"].fillna(0).astype(float)
    end_s = _end_s(s)
    chunks = results.output_chunks(run.events)
    if chunks is None or chunks.empty:
        return end_s, tokens.to_numpy()
    sid = chunks["stream_id"]
    carried = _chunk_tokens(chunks)
    known = carried.notna().groupby(sid).transform("all") & carried.groupby(sid).transform("sum").gt(0)
    weight = carried.where(known, 1.0)
    share = weight / weight.groupby(sid).transform("sum") * sid.map(tokens).to_numpy()
    rest = ~s["stream_id"].isin(sid).to_numpy()  # no output chunk to spread over: at the stream's end
    return (np.concatenate([_event_s(s, chunks), end_s[rest]]),
            np.concatenate([share.to_numpy(), tokens.to_numpy()[rest]]))


def _objectives(slo: dict) -> str:
    return ", ".join(f"{key} <= {float(limit):g}" for key, limit in slo.items() if float(limit or 0) > 0)


def tokens_over_time(run: results.Run, bucket_s: float = 1.0) -> Chart | None:
    """Output tokens per second as they arrived and, with an [slo], goodput: streams meeting it, by end."""
    if not results.has_tokens(run.streams):
        return None
    s = run.streams
    slo = run.info.get("scenario", {}).get("slo") or {}
    objectives = _objectives(slo)
    end_s = _end_s(s)
    n = int(np.ceil(end_s.max() / bucket_s)) + 1
    edges = np.arange(n + 1) * bucket_s
    t_s, tokens = _tokens_at(run)
    panels = [Panel(f"{_title(OUTPUT_TOKENS_PER_S.label)} over time", TIME_S, OUTPUT_TOKENS_PER_S.unit,
                    [Series(OUTPUT_TOKENS_PER_S.label, edges[:-1],
                            np.histogram(t_s, edges, weights=tokens)[0] / bucket_s, "step")])]
    if objectives:
        met = results.meets_slo(s, slo).to_numpy()
        panels.append(Panel(f"{_title(GOODPUT.label)} over time ({objectives})", TIME_S, GOODPUT.unit,
                            [Series(GOODPUT.label, edges[:-1], np.histogram(end_s[met], edges)[0] / bucket_s,
                                    "step", color=MARKS[0][1])]))
    return Chart("tokens_over_time", panels)


#: Every chart, in the report's order.
ALL = (ttfe_distribution, ttfe_over_time, gaps, durations, outcomes_over_time, throughput, ttfe_by_body_size,
       latency_by_concurrency, ttft_distribution, tpot_distribution, itl_distribution, tokens_over_time)


def charts_of(run: results.Run) -> list[Chart]:
    """The run's charts (those it has data for)."""
    return [chart for make in ALL if (chart := make(run)) is not None]


def draw_all(run: results.Run, folder: Path, made: list[Chart] | None = None) -> list[Path]:
    """The run's charts as PNGs in ``folder`` (``<name>.png``)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [png(chart, folder / f"{chart.name}.png") for chart in (made if made is not None else charts_of(run))]
