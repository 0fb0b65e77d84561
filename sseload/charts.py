"""Charts of a run (matplotlib, PNG): each titled, with units, readable at a glance.

Every function takes a loaded :class:`sseload.results.Run` and a path, and returns the path
or None when the run has nothing to draw (e.g. no events; for the token charts, no OpenAI-style
streams).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sseload import results  # noqa: E402
from sseload.metrics import (  # noqa: E402
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
from sseload.outcomes import Outcome, color  # noqa: E402

MARKS = (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red"))


def _title(label: str) -> str:
    return label[:1].upper() + label[1:]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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


def _distribution(values: np.ndarray, metric: Metric, path: Path, name: str | None = None,
                  counted: str = "streams") -> Path | None:
    """A histogram and a CDF of one metric's samples, both marked at p50, p95 and p99."""
    if values.size == 0:
        return None
    name = name or metric.label
    pct = results.percentiles(values)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.hist(values, bins=min(100, max(10, values.size // 20)), color="tab:blue", alpha=0.8)
    ax1.set(title=f"{name}: histogram", xlabel=metric.heading, ylabel=counted)
    xs = np.sort(values)
    ax2.plot(xs, np.arange(1, xs.size + 1) / xs.size, color="tab:blue")
    ax2.set(title=f"{name}: CDF", xlabel=metric.heading, ylabel=f"fraction of {counted}")
    for ax in (ax1, ax2):
        for key, mark in MARKS:
            ax.axvline(pct[key], color=mark, linestyle="--", label=f"{key} {metric.quantity(pct[key])}")
        ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def ttfe_distribution(run: results.Run, path: Path) -> Path | None:
    return _distribution(run.streams["ttfe_ms"].dropna().to_numpy(), TTFE, path, name="Time to first event")


def ttfe_over_time(run: results.Run, path: Path, bucket_s: float = 1.0) -> Path | None:
    s = run.streams.assign(t_s=_rel_s(run) // bucket_s * bucket_s)
    if s["ttfe_ms"].notna().sum() == 0:
        return None
    q = s.groupby("t_s")["ttfe_ms"].quantile([0.5, 0.95, 0.99]).unstack()
    tp = results.throughput(run.streams, None, bucket_s)
    fig, ax = plt.subplots(figsize=(11, 4))
    for col, (key, mark) in zip(q.columns, MARKS, strict=False):
        ax.plot(q.index, q[col], color=mark, label=f"{TTFE.label} {key}")
    ax.set(title=f"{TTFE.label} percentiles over time, against {ACTIVE_STREAMS}", xlabel="time since start (s)",
           ylabel=TTFE.heading)
    ax2 = ax.twinx()
    ax2.fill_between(tp["t_s"], tp["active_streams"], color="tab:blue", alpha=0.15, step="post")
    ax2.set_ylabel(ACTIVE_STREAMS)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def gaps(run: results.Run, path: Path, bucket_s: float = 1.0) -> Path | None:
    ev = run.events
    if ev is None or ev["gap_ms"].notna().sum() == 0:
        return None
    gap = ev["gap_ms"].dropna().to_numpy()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    low = max(gap[gap > 0].min() if (gap > 0).any() else 0.001, 0.001)
    bins = np.logspace(np.log10(low), np.log10(max(gap.max(), low * 10)), 80)
    ax1.hist(np.clip(gap, low, None), bins=bins, color="tab:blue", alpha=0.8)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set(title="Inter-event gaps (log scale)", xlabel=GAP.heading, ylabel="events")
    pct = results.percentiles(gap)
    for key, mark in MARKS:
        ax1.axvline(pct[key], color=mark, linestyle="--", label=f"{key} {GAP.quantity(pct[key])}")
    ax1.legend(fontsize=8)
    t = _event_s(run.streams, ev)
    frame = pd.DataFrame({"t_s": t // bucket_s * bucket_s, "gap_ms": ev["gap_ms"].to_numpy()}).dropna()
    q = frame.groupby("t_s")["gap_ms"].quantile([0.5, 0.99]).unstack()
    ax2.plot(q.index, q[0.5], color="tab:green", label=f"{GAP.label} p50")
    ax2.plot(q.index, q[0.99], color="tab:red", label=f"{GAP.label} p99")
    ax2.set(title=f"{_title(GAP.label)} percentiles over time", xlabel="time since start (s)", ylabel=GAP.heading)
    ax2.legend(fontsize=8)
    return _save(fig, path)


def durations(run: results.Run, path: Path) -> Path | None:
    d = run.streams["duration_ms"].dropna().to_numpy() / 1000.0
    if d.size == 0:
        return None
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.hist(d, bins=80, color="tab:blue", alpha=0.8)
    ax.axvline(run.limit_s, color="tab:red", linestyle="--", label=f"gateway limit {run.limit_s:g} s")
    ax.set(title="Stream duration", xlabel=f"{DURATION.label} (s)", ylabel="streams")
    ax.legend(fontsize=8)
    return _save(fig, path)


def outcomes_over_time(run: results.Run, path: Path) -> Path | None:
    frame = results.frame_outcomes_over_time(run.streams)
    if frame.empty:
        return None
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.stackplot(frame.index, frame.T.to_numpy(), labels=frame.columns,
                 colors=[color(c) for c in frame.columns], step="post")
    ax.set(title="Stream outcomes over time (by end time)", xlabel="time since start (s)", ylabel="streams per s")
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    return _save(fig, path)


def throughput(run: results.Run, path: Path) -> Path | None:
    tp = results.throughput(run.streams, run.events)
    if tp.empty:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, metric in zip(axes, (STREAMS_PER_S, EVENTS_PER_S, BYTES_PER_S), strict=True):
        if metric.key in tp:  # results.throughput's columns are the summary's keys
            ax.plot(tp["t_s"], tp[metric.key], drawstyle="steps-post")
        ax.set(title=_title(metric.label), xlabel="time since start (s)", ylabel=metric.unit)
    return _save(fig, path)


def ttfe_by_body_size(run: results.Run, path: Path) -> Path | None:
    s = run.streams.dropna(subset=["ttfe_ms"])
    if s["body_bytes"].nunique() < 2:
        return None
    q = s.groupby("body_bytes")["ttfe_ms"].quantile([0.5, 0.95, 0.99]).unstack()
    fig, ax = plt.subplots(figsize=(11, 4))
    for col, (key, mark) in zip(q.columns, MARKS, strict=False):
        ax.plot(q.index, q[col], marker="o", color=mark, label=f"{TTFE.label} {key}")
    ax.set_xscale("log")
    ax.set(title=f"{TTFE.label} against request body size", xlabel="request body (bytes)", ylabel=TTFE.heading)
    ax.legend(fontsize=8)
    return _save(fig, path)


def latency_by_concurrency(run: results.Run, path: Path) -> Path | None:
    """TTFE percentiles by how many streams were active when a stream started (ramps, steps)."""
    s = run.streams.dropna(subset=["ttfe_ms"])
    if s.empty:
        return None
    active = results.active_streams_at(run.streams, s["start_ns"].to_numpy())
    if np.unique(active).size < 3:
        return None
    bins = np.unique(np.quantile(active, np.linspace(0, 1, 11)).round())
    level = pd.cut(active, bins=bins, include_lowest=True)
    q = s.assign(level=level).groupby("level", observed=True)["ttfe_ms"].quantile([0.5, 0.95, 0.99]).unstack()
    mid = [iv.mid for iv in q.index]
    fig, ax = plt.subplots(figsize=(11, 4))
    for col, (key, mark) in zip(q.columns, MARKS, strict=False):
        ax.plot(mid, q[col], marker="o", color=mark, label=f"{TTFE.label} {key}")
    ax.set(title="Latency against concurrency", xlabel=f"{ACTIVE_STREAMS} at start", ylabel=TTFE.heading)
    ax.legend(fontsize=8)
    return _save(fig, path)


# --- OpenAI-style streams (sseload.llm): drawn only when the run has token data ---

def ttft_distribution(run: results.Run, path: Path) -> Path | None:
    if not results.has_tokens(run.streams):
        return None
    return _distribution(run.streams["ttft_ms"].dropna().to_numpy(), TTFT, path)


def tpot_distribution(run: results.Run, path: Path) -> Path | None:
    if not results.has_tokens(run.streams):
        return None
    s = run.streams
    return _distribution(s.loc[s["outcome"] == Outcome.OK, "tpot_ms"].dropna().to_numpy(), TPOT, path)


def itl_distribution(run: results.Run, path: Path) -> Path | None:
    if not results.has_tokens(run.streams):
        return None
    chunks = results.output_chunks(run.events)
    itl = results.itl_ms(chunks).dropna().to_numpy() if chunks is not None else np.empty(0)
    return _distribution(itl, ITL, path, counted="gaps between output chunks")


def _chunk_tokens(chunks: pd.DataFrame) -> pd.Series:
    """The output tokens each output chunk carried (the events' ``tokens``, sseload.llm); NaN where unknown."""
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


def tokens_over_time(run: results.Run, path: Path, bucket_s: float = 1.0) -> Path | None:
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
    fig, axes = plt.subplots(1, 2 if objectives else 1, figsize=(12 if objectives else 11, 4), squeeze=False)
    ax = axes[0][0]
    ax.plot(edges[:-1], np.histogram(t_s, edges, weights=tokens)[0] / bucket_s, drawstyle="steps-post")
    ax.set(title=f"{_title(OUTPUT_TOKENS_PER_S.label)} over time", xlabel="time since start (s)",
           ylabel=OUTPUT_TOKENS_PER_S.unit)
    if objectives:
        met = results.meets_slo(s, slo).to_numpy()
        ax = axes[0][1]
        ax.plot(edges[:-1], np.histogram(end_s[met], edges)[0] / bucket_s, drawstyle="steps-post", color="tab:green")
        ax.set(title=f"{_title(GOODPUT.label)} over time ({objectives})", xlabel="time since start (s)",
               ylabel=GOODPUT.unit)
    return _save(fig, path)


ALL = {
    "ttfe.png": ttfe_distribution,
    "ttfe_over_time.png": ttfe_over_time,
    "gaps.png": gaps,
    "durations.png": durations,
    "outcomes_over_time.png": outcomes_over_time,
    "throughput.png": throughput,
    "ttfe_by_body_size.png": ttfe_by_body_size,
    "latency_by_concurrency.png": latency_by_concurrency,
    "ttft.png": ttft_distribution,
    "tpot.png": tpot_distribution,
    "itl.png": itl_distribution,
    "tokens_over_time.png": tokens_over_time,
}


def draw_all(run: results.Run, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, draw in ALL.items():
        path = draw(run, folder / name)
        if path is not None:
            made.append(path)
    return made
