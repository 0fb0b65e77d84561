"""Summarising a loaded run: every derived metric lives here.

The console summary, the reports and the threshold check all call :func:`summarise`, so they
can never disagree; what each of its numbers means, and its label and unit, is in
:mod:`sseload.record.metrics`. Error grouping and the chart series come from here too. What it
takes from the events comes from ``Run.event_facts`` (sseload.views.event_facts), read a batch at
a time; the functions here that take an events frame (:func:`stream_gaps`, :func:`itl_ms`, ...)
are for frames in memory, and compute what those facts do, the same way.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from sseload.protocol.outcomes import ERROR_OUTCOMES, Outcome
from sseload.views.distribution import percentiles
from sseload.views.event_facts import EventFacts
from sseload.views.loading import Run, missing_files
from sseload.views.stream_facts import PerStream, StreamSlots, itl_of
from sseload.views.timeline import active_streams_at, buckets, stream_ends_ns


def run_seconds(streams: pd.DataFrame) -> float:
    """Wall time from the first stream's start to the last stream's end."""
    if streams.empty:
        return 0.0
    start = streams["start_ns"].min()
    end = stream_ends_ns(streams).max()
    return max((end - start) / 1e9, 1e-9)


def start_rate(streams: pd.DataFrame, seconds: float, run_s: float | None = None) -> float:
    """Streams started per second of the load window: the run time where it is known (a run stopped
    early: its run length, if shorter), so the drain after the run time (streams still finishing,
    none starting) does not dilute it; else the run length."""
    n = len(streams)
    if n == 0:
        return 0.0
    return n / max(load_window_s(seconds, run_s), 1e-9)


def load_window_s(seconds: float, run_s: float | None) -> float:
    """The load window: the run time where it is known (the run length, if shorter), else the run length."""
    return min(run_s, seconds) if run_s else seconds


def _seconds_of(run_time) -> float | None:
    """run.json's run_time (Locust's seconds; None without a run time, as in the web UI)."""
    try:
        return float(run_time) if run_time else None
    except (TypeError, ValueError):
        return None


def _per_stream(events: pd.DataFrame, *columns: str) -> tuple[PerStream, StreamSlots]:
    """Each stream's facts (sseload.views.stream_facts.PerStream) of an events frame in memory."""
    slots = StreamSlots(pd.DataFrame({"stream_id": events["stream_id"].unique()}))
    per = PerStream()
    per.add(slots.of(events["stream_id"].to_numpy(np.int64)),
            **{column: events[column].to_numpy(np.float64) for column in columns})
    return per, slots


def stream_gaps(events: pd.DataFrame) -> pd.DataFrame:
    """Per stream: the largest gap (the worst stall a user saw) and the mean gap."""
    per, slots = _per_stream(events, "gap_ms")
    return per.gaps_frame(slots.ids)


def headroom_ms(streams: pd.DataFrame, limit_s: float) -> pd.Series:
    """How far each completed stream stayed from the gateway limit."""
    ok = streams[streams["outcome"] == Outcome.OK]
    return limit_s * 1000.0 - ok["duration_ms"]


def throughput(streams: pd.DataFrame, events: pd.DataFrame | EventFacts | None,
               bucket_s: float = 1.0) -> pd.DataFrame:
    """Streams started, events and bytes received per second of the run, and active streams at each
    second's end. ``events``: the run's event facts (``Run.event_facts``), or an events frame."""
    if streams.empty:
        return pd.DataFrame(columns=["streams_per_s", "events_per_s", "bytes_per_s", "active_streams"])
    t0, edges = buckets(streams, bucket_s)
    started = np.histogram((streams["start_ns"] - t0) / 1e9, edges)[0]
    active = active_streams_at(streams, t0 + edges[1:] * 1e9)
    out = pd.DataFrame({"t_s": edges[:-1], "streams_per_s": started / bucket_s, "active_streams": active})
    facts = EventFacts.of_frame(events, streams, bucket_s) if isinstance(events, pd.DataFrame) else events
    if facts is not None and facts.rows:
        facts = facts.at(bucket_s)
        out["events_per_s"] = facts.events_per_bucket / bucket_s
        out["bytes_per_s"] = facts.bytes_per_bucket / bucket_s
    return out


# request ids, UUIDs: hex runs with a digit and a letter (a plain number, like a size, stays)
_ID = re.compile(r"\b(?=[0-9a-fA-F-]*\d)(?=[0-9a-fA-F-]*[a-fA-F])[0-9a-fA-F]{8,}(?:-[0-9a-fA-F]{4,})*\b")
_DECIMAL = re.compile(r"(?<![\d.])\d+\.\d+(?![\d.])")  # times that differ stream to stream (not addresses)
# the value of anything named an id (request_id=..., "trace-id": "...", X-Request-Id: ...)
_NAMED_ID = re.compile(r"""(?i)(\b[\w-]*id["']?\s*[:=]\s*["']?)[\w.:-]+""")
_LONG_NUMBER = re.compile(r"(?<![\d.])\d{6,}(?![\d.]|\s*(?:bytes|[kKMG]?B\b))")  # ids, timestamps; not sizes


def error_cause(text: str) -> str:
    """An error's text with what differs between streams of one cause (request ids, times) taken out,
    so streams that failed the same way group together."""
    text = _NAMED_ID.sub(r"\1<id>", text or "")
    return _DECIMAL.sub("N", _LONG_NUMBER.sub("<n>", _ID.sub("<id>", text)))[:300]


def top_errors(streams: pd.DataFrame, n: int = 10) -> list[dict]:
    """The most frequent ways streams failed: outcome, status, gateway code and cause, with counts."""
    failed = streams[streams["outcome"].isin([o.value for o in ERROR_OUTCOMES]
                                             + [Outcome.CUTOFF.value])]
    if failed.empty:
        return []
    frame = pd.DataFrame({"outcome": failed["outcome"], "status": failed["status"].fillna(0).astype(int),
                          "error_code": failed["error_code"].fillna(""),
                          "cause": failed["error"].fillna("").map(error_cause)})
    counts = frame.groupby(["outcome", "status", "error_code", "cause"]).size().sort_values(ascending=False)
    total = len(streams)
    return [{"outcome": o, "status": int(st), "error_code": c, "cause": cause, "streams": int(k),
             "share": k / total} for (o, st, c, cause), k in counts.head(n).items()]


def buffered_streams(events: pd.DataFrame) -> int:
    """Streams whose every event arrived in one read (sseload.views.stream_facts.PerStream.buffered)."""
    return _per_stream(events, "t_ms")[0].buffered() if len(events) else 0


#: run.json settings whose difference makes two runs measure different things.
COMPARABLE = (("scenario name", ("scenario", "name")), ("users", ("users",)), ("run time", ("run_time",)),
              ("load shape", ("scenario", "load", "shape")),
              ("arrival", ("scenario", "load", "arrival")), ("workers", ("workers",)))


def differences(info_a: dict, info_b: dict) -> list[str]:
    """How two runs' settings differ ("users 10 against 20"), for a comparison to warn of first."""
    out = []
    for label, path in COMPARABLE:
        va, vb = info_a, info_b
        for key in path:
            va = va.get(key) if isinstance(va, dict) else None
            vb = vb.get(key) if isinstance(vb, dict) else None
        if va != vb:
            out.append(f"{label} {va} against {vb}")
    return out


#: Where each sampled distribution's samples come from: (table, column, ok streams only). The one
#: mapping the summary's percentiles and compare's resampling (sseload.views.compare) both read.
SAMPLED = {
    "ttfe_ms": ("streams", "ttfe_ms", False),
    "duration_ms": ("streams", "duration_ms", True),
    "ttft_ms": ("streams", "ttft_ms", False),
    "answer_ttft_ms": ("streams", "answer_ttft_ms", False),
    "ttst_ms": ("streams", "ttst_ms", False),
    "tpot_ms": ("streams", "tpot_ms", True),
    "max_stall_ms": ("streams", "max_stall_ms", False),
    "tokens_per_s": ("streams", "tokens_per_s", True),
    "prefill_tokens_per_s": ("streams", "prefill_tokens_per_s", False),
    "feed_gap_ms": ("streams", "feed_gap_ms", False),
    "gap_ms": ("events", "gap_ms", False),
}
#: Shares of streams (sseload.record.metrics' rates): the outcomes each counts.
SHARES = {"error_rate": frozenset(o.value for o in ERROR_OUTCOMES), "cutoff_rate": frozenset({Outcome.CUTOFF.value})}


def samples(run: Run, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A distribution's samples as (stream_id of each, value), NaN dropped; None where the run has no such data."""
    table, column, ok_only = SAMPLED[key]
    if table == "events":  # only the two columns, read whole (sseload.views.compare resamples them)
        facts = run.event_facts
        return facts.samples(column) if facts is not None else None
    frame = run.streams
    if column not in frame:
        return None
    if ok_only:
        frame = frame[frame["outcome"] == Outcome.OK]
    values = frame[column].to_numpy(np.float64)
    keep = ~np.isnan(values)
    return frame["stream_id"].to_numpy()[keep], values[keep]


def sampled(run: Run, key: str) -> dict:
    """The percentiles of one of SAMPLED's distributions."""
    if SAMPLED[key][0] == "events":
        facts = run.event_facts
        return getattr(facts, key) if facts is not None else percentiles(np.empty(0))
    got = samples(run, key)
    return percentiles(got[1] if got is not None else np.empty(0))


def share(streams: pd.DataFrame, key: str) -> float:
    """One of SHARES: the fraction of streams that ended in its outcomes."""
    return float(streams["outcome"].isin(SHARES[key]).mean()) if len(streams) else 0.0


def summarise(run: Run) -> dict:
    """The numbers every output shows: counts, rates, TTFE, gaps, durations, harness error."""
    s = run.streams
    total = len(s)
    outcomes = s["outcome"].value_counts().to_dict()
    seconds = run_seconds(s)
    n_events = int(s["events"].sum())
    summary = {
        "run_id": run.info.get("run_id", run.run_dir.name),
        "streams": total,
        "outcomes": {k: int(v) for k, v in sorted(outcomes.items())},
        "top_errors": top_errors(s),
        "missing": missing_files(run),
        "ok_rate": outcomes.get(Outcome.OK, 0) / total if total else 0.0,
        "cutoff_rate": share(s, "cutoff_rate"),
        "error_rate": share(s, "error_rate"),
        "events": n_events,
        "duration_s": seconds,
        "streams_per_s": start_rate(s, seconds, _seconds_of(run.info.get("run_time"))),
        "events_per_s": n_events / seconds if total else 0.0,
        "bytes_per_s": float(s["response_bytes"].sum()) / seconds if total else 0.0,
        "ttfe_ms": sampled(run, "ttfe_ms"),
        "ttfb_ms": percentiles(s["ttfb_ms"]),
        "duration_ms": sampled(run, "duration_ms"),
        "headroom_ms": percentiles(headroom_ms(s, run.limit_s)),
        "partial": bool(run.info.get("partial", False)),
        # against the reference target sseload started, lateness is the harness's own error; against
        # any other service it is the delivery delay: network, proxies and harness together
        "embedded_target": bool(run.info.get("embedded_target", False)),
        "partial_reason": run.info.get("partial_reason", ""),
        "health": run.info.get("health", {}),
    }
    if "schedule_lag_ms" in s and s["schedule_lag_ms"].notna().any():
        # open model: latency from when the stream should have started, not when it did
        summary["schedule_lag_ms"] = percentiles(s["schedule_lag_ms"])
        summary["ttfe_from_schedule_ms"] = percentiles(s["schedule_lag_ms"] + s["ttfe_ms"])
    trace = ((run.info.get("scenario") or {}).get("load") or {}).get("trace")
    if trace and "schedule_lag_ms" in summary:  # a trace replay: whether the harness kept its times
        summary["trace"] = trace_summary(trace, s["schedule_lag_ms"])
    if has_tokens(s):
        summary.update(token_summary(run, load_window_s(seconds, _seconds_of(run.info.get("run_time"))), seconds))
    if "feed_id" in s and s["feed_id"].notna().any():  # reconnect mode (sseload.protocol.feed)
        summary["feeds"] = int(s["feed_id"].nunique())
        summary["reconnects"] = int((s["outcome"] == Outcome.RECONNECTED).sum())
        summary["reconnect_ms"] = percentiles(s["reconnect_ms"])
        summary["feed_gap_ms"] = sampled(run, "feed_gap_ms")
        summary["missed_events"] = int(s["missed_events"].fillna(0).sum())
    facts = run.event_facts  # the events, read a batch at a time (sseload.views.event_facts)
    if facts is not None:
        summary["gap_ms"] = sampled(run, "gap_ms")
        # An event read together with the one before it carries that read's time, the later
        # arrival: sent together, or closer together than the reader's window (docs/measurement.md).
        summary["events_read_together"] = facts.events_read_together
        summary["buffered_streams"] = facts.buffered_streams
        summary["lateness_ms"] = facts.lateness_ms
        summary["ttfe_error_ms"] = facts.ttfe_error_ms
        if facts.rows:
            summary["max_gap_ms"] = percentiles(facts.stream_gaps["max_gap_ms"])
    return summary


#: A trace is kept when its streams started within this of their times, at p99 (docs/traces.md).
TRACE_KEPT_P99_MS = 10.0


def trace_summary(trace: str, schedule_lag_ms: pd.Series) -> dict:
    """How well the trace's times were kept: its streams, the late ones (schedule lag over
    TRACE_KEPT_P99_MS) and whether the p99 was within it; a trace not kept is flagged, never stretched."""
    lag = schedule_lag_ms.dropna()
    p = percentiles(lag)
    return {"file": trace.replace("\\", "/").rsplit("/", 1)[-1], "streams": int(lag.size),
            "late_streams": int((lag > TRACE_KEPT_P99_MS).sum()),
            "late_ms": TRACE_KEPT_P99_MS, "kept": bool(p.get("p99") is not None and p["p99"] <= TRACE_KEPT_P99_MS),
            "schedule_lag_p99_ms": p.get("p99")}


#: Each [slo] objective and the streams' column it limits (a stream above any limit misses the SLO).
SLO_COLUMNS = {"ttft_ms": "ttft_ms", "answer_ttft_ms": "answer_ttft_ms", "tpot_ms": "tpot_ms",
               "max_stall_ms": "max_stall_ms", "e2e_ms": "duration_ms"}


def meets_slo(streams: pd.DataFrame, slo: dict) -> pd.Series:
    """Streams that ended ok and met every objective of ``slo`` (0: none): SLO_COLUMNS' keys."""
    met = streams["outcome"] == Outcome.OK
    for key, column in SLO_COLUMNS.items():
        if column not in streams:
            continue
        limit = float(slo.get(key) or 0)
        if limit > 0:
            met &= streams[column].le(limit)  # NaN (not measured) never meets
    return met


def has_tokens(streams: pd.DataFrame) -> bool:
    """The streams are OpenAI-style (sseload.record.tokens): the summary, charts and reports add token metrics."""
    return "ttft_ms" in streams and streams["output_tokens"].notna().any()


def output_chunks(events: pd.DataFrame | None) -> pd.DataFrame | None:
    """OpenAI-style streams: the events whose chunk carried output; None without events or token columns."""
    if events is None or "output" not in events:
        return None
    return events[events["output"].eq(True)]


def itl_ms(chunks: pd.DataFrame) -> pd.Series:
    """ITL (record.metrics): per output chunk, the gap since the stream's output chunk before (NaN for a
    first), as sseload.views.stream_facts.itl_of computes it batch by batch."""
    sid = chunks["stream_id"].to_numpy(np.int64)
    slots = StreamSlots(pd.DataFrame({"stream_id": np.unique(sid)}))
    slot = slots.of(sid)
    return pd.Series(itl_of(slot, chunks["t_ms"].to_numpy(np.float64), np.full(slots.size, np.nan)),
                     index=chunks.index, name="t_ms")


def token_summary(run: Run, load_s: float, seconds: float) -> dict:
    """The token metrics of OpenAI-style streams (definitions in sseload.record.metrics)."""
    s = run.streams
    tokens = int(s["output_tokens"].fillna(0).sum())
    met = int(meets_slo(s, run.info.get("scenario", {}).get("slo", {})).sum())
    out = {key: sampled(run, key) for key in ("ttft_ms", "answer_ttft_ms", "ttst_ms", "tpot_ms", "max_stall_ms",
                                               "tokens_per_s", "prefill_tokens_per_s") if key in s}
    if "schedule_lag_ms" in s and s["schedule_lag_ms"].notna().any():  # open model: TTFT a user on schedule saw
        out["ttft_from_schedule_ms"] = percentiles(s["schedule_lag_ms"] + s["ttft_ms"])
    abandoned = int((s["outcome"] == Outcome.ABANDONED).sum())
    if abandoned:
        out["abandon_rate"] = abandoned / len(s)
    if "tokenizer_tokens" in s:
        both = s["tokenizer_tokens"].notna() & s["tokens_from"].eq("usage")
        if both.any():  # the scenario's tokenizer against the server's usage: how far they disagree
            out["tokenizer_vs_usage"] = float(s.loc[both, "tokenizer_tokens"].sum() /
                                              max(s.loc[both, "output_tokens"].sum(), 1) - 1)
    out |= {
        "output_tokens": tokens,
        "output_tokens_per_s": tokens / seconds if seconds else 0.0,
        "goodput": met / load_s if load_s else 0.0,
        "slo_rate": met / len(s) if len(s) else 0.0,
        "tokens_from": {k: int(v) for k, v in s["tokens_from"].value_counts().items()},
    }
    finished = s["finish_reason"].dropna() if "finish_reason" in s else pd.Series(dtype=object)
    if not finished.empty:
        out["finish_reasons"] = {k: int(v) for k, v in finished.value_counts().items()}
    if "turn" in s and s["turn"].notna().any():  # multi-turn conversations: TTFT grows with the history
        out["conversations"] = int(s["conversation_id"].nunique())
        out["ttft_by_turn_ms"] = {int(turn): percentiles(group) for turn, group in s.groupby("turn")["ttft_ms"]}
    facts = run.event_facts
    if facts is not None and facts.has_output:  # the chunks carrying output (output_chunks), a batch at a time
        out["itl_ms"] = facts.itl.stats
        if facts.has_tokens:
            out["itl_per_token_ms"] = facts.itl_per_token_ms
    return out


def frame_outcomes_over_time(streams: pd.DataFrame, bucket_s: float = 1.0) -> pd.DataFrame:
    """Streams ending per second, by outcome (for stacked charts)."""
    if streams.empty:
        return pd.DataFrame()
    t0 = streams["start_ns"].min()
    end_s = (stream_ends_ns(streams) - t0) / 1e9
    bucket = (end_s // bucket_s * bucket_s).rename("t_s")
    return streams.groupby([bucket, streams["outcome"]]).size().unstack(fill_value=0)
