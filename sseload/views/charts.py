"""Charts of a run, each described once (a :class:`~sseload.views.chart_render.Chart`) and drawn
twice by sseload.views.chart_render: a PNG for summary.md and an interactive ECharts chart in
report.html.

Every chart function takes a loaded :class:`sseload.views.results.Run` and returns its Chart, or None
when the run has nothing to draw (e.g. no events). An LLM run's charts (sseload.views.llm_charts)
come first, these after them. What a chart shows of the events comes from ``Run.event_facts``
(sseload.views.event_facts), never from the whole events table.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from sseload.protocol.outcomes import color  # noqa: E402
from sseload.record.metrics import (  # noqa: E402
    BYTES_PER_S,
    DURATION,
    EVENTS_PER_S,
    GAP,
    STREAMS_PER_S,
    TTFE,
)
from sseload.views import llm_charts, results  # noqa: E402
from sseload.views.chart_parts import (  # noqa: E402
    TIME_S,
    by_concurrency,
    distribution,
    marks_at,
    over_time,
    quantiles_by,
    title_of,
)
from sseload.views.chart_render import LINE, MARKS, Chart, Mark, Panel, Series, echarts_options, png  # noqa: E402, F401

# --- the charts ---

def ttfe_distribution(run: results.Run) -> Chart | None:
    return distribution(run.streams["ttfe_ms"].dropna().to_numpy(), TTFE, "ttfe", title="Time to first event")


def ttfe_over_time(run: results.Run, bucket_s: float = 1.0) -> Chart | None:
    return over_time(run, TTFE, "ttfe_over_time", bucket_s)


def gaps(run: results.Run, bucket_s: float = 1.0) -> Chart | None:
    """The gaps on a log scale, marked at the summary's percentiles, and their p50 and p99 per second
    (from a log histogram per second: within 1.2%)."""
    facts = run.event_facts
    if facts is None or not facts.gap_ms["count"]:
        return None
    counts, edges = facts.gap_histogram
    t_s, q = facts.at(bucket_s).gaps_over_time((0.5, 0.99))
    return Chart("gaps", [
        Panel("Inter-event gaps (log scale)", GAP.heading, "events",
              [Series("events", edges[:-1], counts.astype(float), "hist", width=np.diff(edges))],
              marks_at(facts.gap_ms, GAP), xlog=True, ylog=True),
        Panel(f"{title_of(GAP.label)} percentiles over time", TIME_S, GAP.heading,
              [Series(f"{GAP.label} p50", t_s, q[:, 0], color=MARKS[0][1]),
               Series(f"{GAP.label} p99", t_s, q[:, 1], color=MARKS[2][1])]),
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
    tp = results.throughput(run.streams, run.event_facts)
    if tp.empty:
        return None
    panels = []
    for metric in (STREAMS_PER_S, EVENTS_PER_S, BYTES_PER_S):
        values = tp[metric.key].to_numpy(float) if metric.key in tp else np.empty(0)  # the summary's keys
        unit = metric.unit
        if metric is BYTES_PER_S:
            values, unit = _scaled_bytes(values)
        series = [Series(metric.label, tp["t_s"].to_numpy(float), values, "step")] if values.size else []
        panels.append(Panel(title_of(metric.label), TIME_S, unit, series))
    return Chart("throughput", panels)


def ttfe_by_body_size(run: results.Run) -> Chart | None:
    s = run.streams.dropna(subset=["ttfe_ms"])
    if s["body_bytes"].nunique() < 2:
        return None
    q = quantiles_by(s, "body_bytes", "ttfe_ms")
    return Chart("ttfe_by_body_size", [Panel(
        f"{TTFE.label} against request body size", "request body (bytes)", TTFE.heading,
        [Series(f"{TTFE.label} {key}", q.index.to_numpy(float), q[col].to_numpy(), "points", color=mark)
         for col, (key, mark) in zip(q.columns, MARKS, strict=False)], xlog=True)])


def latency_by_concurrency(run: results.Run) -> Chart | None:
    """TTFE percentiles by how many streams were active when a stream started (ramps, steps): equal-width
    ranges of the count, a point per range with streams and a break in the line where one has none."""
    s = run.streams.dropna(subset=["ttfe_ms"])
    if s.empty:
        return None
    active = results.active_streams_at(run.streams, s["start_ns"].to_numpy())
    if np.unique(active).size < 3:
        return None
    return Chart("latency_by_concurrency", [by_concurrency(TTFE, active, s["ttfe_ms"].to_numpy(),
                                                           f"{TTFE.label} against concurrency")])


#: Every chart of any run, in the report's order.
ALL = (ttfe_distribution, ttfe_over_time, gaps, durations, outcomes_over_time, throughput, ttfe_by_body_size,
       latency_by_concurrency)


def charts_of(run: results.Run) -> list[Chart]:
    """The run's charts (those it has data for): an LLM run's token charts (sseload.views.llm_charts)
    first, then the TTFE, gap and throughput charts every run has."""
    makers = (*llm_charts.ALL, *ALL) if results.has_tokens(run.streams) else ALL
    return [chart for make in makers if (chart := make(run)) is not None]


def draw_all(run: results.Run, folder: Path, made: list[Chart] | None = None) -> list[Path]:
    """The run's charts as PNGs in ``folder`` (``<name>.png``)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [png(chart, folder / f"{chart.name}.png") for chart in (made if made is not None else charts_of(run))]
