"""A run read back: its files loaded (:mod:`sseload.views.loading`) and summarised (:mod:`sseload.views.summary`).

This module is the one face of both: ``sseload.load`` and ``sseload.summarise`` come from here, as
do the CLI's and the reports' ``results.load(run_dir)`` and ``results.summarise(run)``, so the
two modules behind it can change without their callers. What each column of the files means is
in docs/results-format.md; what each summary number means, in :mod:`sseload.record.metrics`.
"""

from sseload.views.distribution import PERCENTILES, percentiles
from sseload.views.event_facts import EventFacts
from sseload.views.loading import ResultsError, Run, load, missing_files
from sseload.views.summary import (
    COMPARABLE,
    SAMPLED,
    SHARES,
    buffered_streams,
    differences,
    error_cause,
    frame_outcomes_over_time,
    has_tokens,
    headroom_ms,
    itl_ms,
    load_window_s,
    meets_slo,
    output_chunks,
    run_seconds,
    sampled,
    samples,
    share,
    start_rate,
    stream_gaps,
    summarise,
    throughput,
    token_summary,
    top_errors,
)
from sseload.views.timeline import active_streams_at, stream_ends_ns

__all__ = [
    "COMPARABLE", "PERCENTILES", "SAMPLED", "SHARES", "EventFacts", "ResultsError", "Run", "active_streams_at",
    "buffered_streams",
    "differences", "error_cause", "frame_outcomes_over_time", "has_tokens", "headroom_ms", "itl_ms", "load",
    "load_window_s", "meets_slo", "missing_files", "output_chunks", "percentiles", "run_seconds", "sampled",
    "samples", "share", "start_rate", "stream_ends_ns", "stream_gaps", "summarise", "throughput", "token_summary",
    "top_errors",
]
