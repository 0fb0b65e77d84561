"""The charts of an LLM run, the ones a vLLM or AIPerf user looks for, which lead its report: TTFT
(its distribution, over time, against prompt tokens and against concurrency), TPOT, ITL, output
tokens/s over time and per user against in all. Each returns None for a run without token data
(sseload.views.summary.has_tokens); sseload.views.charts.charts_of puts them first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sseload.protocol.outcomes import Outcome
from sseload.record.metrics import ACTIVE_STREAMS, GOODPUT, ITL, OUTPUT_TOKENS_PER_S, TOKENS_PER_S, TPOT, TTFT
from sseload.views import results
from sseload.views.chart_parts import (
    TIME_S,
    by_concurrency,
    distribution,
    end_s,
    event_s,
    over_time,
    quantiles_in_ranges,
    title_of,
)
from sseload.views.chart_render import MARKS, Chart, Panel, Series


def ttft_distribution(run: results.Run) -> Chart | None:
    if not results.has_tokens(run.streams):
        return None
    return distribution(run.streams["ttft_ms"].dropna().to_numpy(), TTFT, "ttft")


def tpot_distribution(run: results.Run) -> Chart | None:
    if not results.has_tokens(run.streams):
        return None
    s = run.streams
    return distribution(s.loc[s["outcome"] == Outcome.OK, "tpot_ms"].dropna().to_numpy(), TPOT, "tpot")


def itl_distribution(run: results.Run) -> Chart | None:
    if not results.has_tokens(run.streams):
        return None
    chunks = results.output_chunks(run.events)
    itl = results.itl_ms(chunks).dropna().to_numpy() if chunks is not None else np.empty(0)
    return distribution(itl, ITL, "itl", counted="gaps between output chunks")




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
    ends_s = end_s(s)
    chunks = results.output_chunks(run.events)
    if chunks is None or chunks.empty:
        return ends_s, tokens.to_numpy()
    sid = chunks["stream_id"]
    carried = _chunk_tokens(chunks)
    known = carried.notna().groupby(sid).transform("all") & carried.groupby(sid).transform("sum").gt(0)
    weight = carried.where(known, 1.0)
    share = weight / weight.groupby(sid).transform("sum") * sid.map(tokens).to_numpy()
    rest = ~s["stream_id"].isin(sid).to_numpy()  # no output chunk to spread over: at the stream's end
    return (np.concatenate([event_s(s, chunks), ends_s[rest]]),
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
    ends_s = end_s(s)
    n = int(np.ceil(ends_s.max() / bucket_s)) + 1
    edges = np.arange(n + 1) * bucket_s
    t_s, tokens = _tokens_at(run)
    panels = [Panel(f"{title_of(OUTPUT_TOKENS_PER_S.label)} over time", TIME_S, OUTPUT_TOKENS_PER_S.unit,
                    [Series(OUTPUT_TOKENS_PER_S.label, edges[:-1],
                            np.histogram(t_s, edges, weights=tokens)[0] / bucket_s, "step")])]
    if objectives:
        met = results.meets_slo(s, slo).to_numpy()
        panels.append(Panel(f"{title_of(GOODPUT.label)} over time ({objectives})", TIME_S, GOODPUT.unit,
                            [Series(GOODPUT.label, edges[:-1], np.histogram(ends_s[met], edges)[0] / bucket_s,
                                    "step", color=MARKS[0][1])]))
    return Chart("tokens_over_time", panels)


def ttft_over_time(run: results.Run) -> Chart | None:
    if not results.has_tokens(run.streams):
        return None
    return over_time(run, TTFT, "ttft_over_time")


def ttft_by_prompt_tokens(run: results.Run) -> Chart | None:
    """TTFT percentiles in ranges of the prompt's tokens (the usage's): what prefill costs."""
    s = run.streams
    if not results.has_tokens(s) or "prompt_tokens" not in s:
        return None
    s = s.dropna(subset=["prompt_tokens", "ttft_ms"])
    if s["prompt_tokens"].nunique() < 2:
        return None
    mid, q = quantiles_in_ranges(s["prompt_tokens"].to_numpy(np.int64), s["ttft_ms"].to_numpy())
    return Chart("ttft_by_prompt_tokens", [Panel(
        f"{TTFT.label} against prompt tokens", "prompt tokens (usage)", TTFT.heading,
        [Series(f"{TTFT.label} {key}", mid, q[col].to_numpy(), "points", color=mark)
         for col, (key, mark) in zip(q.columns, MARKS, strict=False)],
        note="ranges without streams are gaps in the lines")])


def ttft_itl_by_concurrency(run: results.Run) -> Chart | None:
    """TTFT by the streams open when each stream started, ITL by those open when each chunk came."""
    s = run.streams
    if not results.has_tokens(s):
        return None
    started = s.dropna(subset=["ttft_ms"])
    active = results.active_streams_at(s, started["start_ns"].to_numpy())
    if started.empty or np.unique(active).size < 3:
        return None
    panels = [by_concurrency(TTFT, active, started["ttft_ms"].to_numpy(), f"{TTFT.label} against concurrency")]
    chunks = results.output_chunks(run.events)
    if chunks is not None and not chunks.empty:
        itl = results.itl_ms(chunks)
        at_ns = chunks["stream_id"].map(s.set_index("stream_id")["start_ns"]) + chunks["t_ms"] * 1e6
        keep = itl.notna().to_numpy()
        if keep.any():
            panel = by_concurrency(ITL, results.active_streams_at(s, at_ns.to_numpy()[keep]),
                                        itl.to_numpy()[keep], f"{ITL.label} against concurrency")
            panel.xlabel = f"{ACTIVE_STREAMS} at the chunk"
            panels.append(panel)
    return Chart("ttft_itl_by_concurrency", panels)


def tokens_per_user_against_total(run: results.Run, bucket_s: float = 1.0) -> Chart | None:
    """What each user reads at against what the service serves in all (AIPerf's and vLLM's trade-off,
    within one run): a point per second, its output tokens/s in all against the p50 of the per-user
    output tokens/s of the ok streams open in it."""
    s = run.streams
    if not results.has_tokens(s) or TOKENS_PER_S.key not in s:
        return None
    ok = s[(s["outcome"] == Outcome.OK) & s[TOKENS_PER_S.key].notna()]
    if ok.empty:
        return None
    t_s, tokens = _tokens_at(run)
    ends = end_s(s)
    edges = np.arange(int(np.ceil(ends.max() / bucket_s)) + 1) * bucket_s
    total = np.histogram(t_s, edges, weights=tokens)[0] / bucket_s
    first = ((ok["start_ns"] - s["start_ns"].min()) / 1e9 // bucket_s).to_numpy(np.int64)
    last = (ends[(s["outcome"] == Outcome.OK) & s[TOKENS_PER_S.key].notna()] // bucket_s).astype(np.int64)
    spans = last - first + 1  # the seconds each stream was open in
    second = np.repeat(first, spans) + np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
    per_user = pd.Series(np.repeat(ok[TOKENS_PER_S.key].to_numpy(), spans)).groupby(second).median()
    per_user = per_user[per_user.index < total.size]
    per_user = per_user[total[per_user.index.to_numpy()] > 0]  # seconds with output
    if per_user.empty:
        return None
    return Chart("tokens_per_user_against_total", [Panel(
        f"{title_of(TOKENS_PER_S.label)} against {OUTPUT_TOKENS_PER_S.label}",
        f"{OUTPUT_TOKENS_PER_S.label} ({OUTPUT_TOKENS_PER_S.unit})", f"{TOKENS_PER_S.heading} p50",
        [Series(f"{TOKENS_PER_S.label} p50", total[per_user.index.to_numpy()], per_user.to_numpy(), "scatter",
                color=MARKS[0][1])],
        note="a point per second of the run: its output in all, and the streams open in it")])


#: An LLM run's charts, in the report's order: before every other chart (sseload.views.charts.ALL).
ALL = (ttft_distribution, ttft_over_time, tpot_distribution, itl_distribution, tokens_over_time,
       tokens_per_user_against_total, ttft_by_prompt_tokens, ttft_itl_by_concurrency)
