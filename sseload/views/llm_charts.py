"""The charts of an LLM run, the ones a vLLM or AIPerf user looks for, which lead its report: TTFT
(its distribution, over time, against prompt tokens and against concurrency), TPOT, ITL, output
tokens/s over time and per user against in all. Each returns None for a run without token data
(sseload.views.summary.has_tokens); sseload.views.charts.charts_of puts them first. What they show
of the events (ITL, when the tokens arrived) comes from ``Run.event_facts`` (sseload.views.event_facts).
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
    by_concurrency_of,
    distribution,
    distribution_of,
    end_s,
    histograms_in_ranges,
    over_time,
    quantiles_in_ranges,
    title_of,
)
from sseload.views.chart_render import MARKS, Chart, Panel, Series
from sseload.views.timeline import buckets


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
    facts = run.event_facts
    if facts is None or not facts.has_output:
        return None
    return distribution_of(facts.itl, ITL, "itl", counted="gaps between output chunks")


def _chunks_of(run: results.Run, bucket_s: float = 1.0) -> results.EventFacts | None:
    """The run's event facts, where its events say which chunks carried output."""
    facts = run.event_facts
    return facts.at(bucket_s) if facts is not None and facts.has_output else None


def _tokens_at(run: results.Run) -> tuple[np.ndarray, np.ndarray]:
    """(seconds since the run's start, output tokens): when each stream's output tokens arrived.

    Each stream's count (streams' ``output_tokens``, as the summary counts them) is spread over its
    chunks carrying output, by the tokens each carried (events' ``tokens``, record.tokens) or, where
    one is unknown, in equal shares (sseload.views.event_facts places them). Without events, or for
    a stream without output chunks, all of it at its end. The charts read the same per second
    (:func:`_tokens_per_bucket`); these whole arrays are for a small run's questions.
    """
    facts = _chunks_of(run)
    if facts is None:
        return end_s(run.streams), run.streams["output_tokens"].fillna(0).astype(float).to_numpy()
    return facts.output_tokens_at()


def _tokens_per_bucket(run: results.Run, edges: np.ndarray, bucket_s: float) -> np.ndarray:
    """Output tokens in each time bucket (``edges``: from 0, ``bucket_s`` apart), as :func:`_tokens_at` places them."""
    facts = _chunks_of(run, bucket_s)
    if facts is None:
        t_s, tokens = _tokens_at(run)
        return np.histogram(t_s, edges, weights=tokens)[0]
    return facts.output_tokens_per_bucket[:edges.size - 1]


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
    _, edges = buckets(s, bucket_s)
    panels = [Panel(f"{title_of(OUTPUT_TOKENS_PER_S.label)} over time", TIME_S, OUTPUT_TOKENS_PER_S.unit,
                    [Series(OUTPUT_TOKENS_PER_S.label, edges[:-1],
                            _tokens_per_bucket(run, edges, bucket_s) / bucket_s, "step")])]
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
    facts = _chunks_of(run)
    if facts is not None and facts.itl.stats["count"]:  # ITL by the streams open at each chunk (within 1.2%)
        panel = by_concurrency_of(ITL, *histograms_in_ranges(facts.itl_by_open_streams),
                                  f"{ITL.label} against concurrency")
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
    ends = end_s(s)
    edges = np.arange(int(np.ceil(ends.max() / bucket_s)) + 1) * bucket_s
    total = _tokens_per_bucket(run, edges, bucket_s) / bucket_s
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
