"""The metric table: every number of a run's summary, with its label, unit, meaning and direction.

The console summary, ``summary.md``, ``report.html``, the web UI tab, the charts,
``sseload compare`` and the ``[thresholds]`` check all read their labels, units, directions and
threshold names from here, so adding a metric touches one place. The numbers themselves come
from :func:`sseload.views.results.summarise`, under each metric's ``key``. Pure data: no imports
beyond the standard library, so the web UI and ``sseload report`` pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

#: The stats of a percentiles dict (``results.percentiles``) that tables show, in order.
PERCENTILE_STATS = ("p50", "p90", "p95", "p99", "max")


@dataclass(frozen=True)
class Metric:
    """One number of the summary (``scalar``) or one percentiles dict (``distribution``)."""

    key: str  # the summary dict's key, e.g. "ttfe_ms"
    label: str  # for people, e.g. "TTFE"; the only place this text is written
    unit: str  # "ms", "streams/s"; "" for counts of what the label names, and for shares
    kind: Literal["distribution", "scalar"]
    definition: str  # what it measures, from when to when
    higher_is_worse: bool = True  # the direction of thresholds and of regressions in compare
    section: Literal["run", "latency", "harness"] = "latency"  # where reports show it
    stats: tuple[str, ...] = ()  # a distribution's stats, as its percentiles dict names them
    threshold_stats: tuple[str | None, ...] = ()  # stats a threshold may limit; (None,) for a scalar
    compared_stats: tuple[str | None, ...] = ()  # stats `sseload compare` judges; (None,) for a scalar
    population: str = ""  # which streams it covers when not all of them, e.g. "ok streams"
    fmt: str = ".1f"  # format spec of one value
    console: bool = False  # one of the rows of the console's short percentile table
    noise_floor: float = 0.0  # an absolute change below this is never a regression (rates near zero)

    def __post_init__(self) -> None:
        if (self.kind == "distribution") != bool(self.stats):
            raise ValueError(f"metric {self.key}: a distribution, and only one, names its stats")
        extra = {s for s in (*self.threshold_stats, *self.compared_stats) if s is not None} - set(self.stats)
        if extra:
            raise ValueError(f"metric {self.key}: thresholds or comparisons name stats it lacks: {sorted(extra)}")

    @property
    def heading(self) -> str:
        """The label as a table row names it: ``TTFE (ms)``, ``duration, ok streams (ms)``."""
        text = f"{self.label}, {self.population}" if self.population else self.label
        return f"{text} ({self.unit})" if self.unit else text

    def format(self, value: float | None) -> str:
        """One value as tables show it; ``-`` for nothing measured."""
        return "-" if value is None else format(value, self.fmt)

    def quantity(self, value: float | None) -> str:
        """One value with its unit: ``8.5 streams/s``."""
        return f"{self.format(value)} {self.unit}" if self.unit else self.format(value)

    def value(self, summary: Mapping, stat: str | None = None) -> float | None:
        """This metric's number in a summary (a distribution's ``stat``); None when not measured."""
        found = summary.get(self.key)
        if self.kind == "distribution":
            return (found or {}).get(stat)
        return found


def _latency(key: str, label: str, definition: str, **kw) -> Metric:
    return Metric(key, label, "ms", "distribution", definition, stats=PERCENTILE_STATS, **kw)


TTFE = _latency(
    "ttfe_ms", "TTFE",
    "time to first event: from when the request starts to go out (after connecting and signing) "
    "to the read that completed the stream's first event",
    threshold_stats=PERCENTILE_STATS, compared_stats=("p50", "p95", "p99"), console=True)
TTFT = _latency(
    "ttft_ms", "TTFT",
    "OpenAI-style streams: time to first token, from when the request starts to go out to the read that "
    "completed the first chunk carrying output ([stream] output: content, reasoning or tool calls by default; "
    "role-only, empty and usage-only chunks never count)",
    threshold_stats=PERCENTILE_STATS, compared_stats=("p50", "p95", "p99"), console=True)
ANSWER_TTFT = _latency(
    "answer_ttft_ms", "TTFT to the answer",
    "LLM streams: time to the first answer token, from when the request starts to go out to the read that completed "
    "the first chunk carrying answer text, after any reasoning (thinking) or tool calls; equals TTFT without them",
    threshold_stats=PERCENTILE_STATS, compared_stats=("p50", "p99"), console=True)
TTST = _latency(
    "ttst_ms", "TTST",
    "LLM streams: time to second token, to the read that completed the chunk carrying the stream's second output "
    "token (the first chunk's, when it carried two or more)",
    threshold_stats=PERCENTILE_STATS)
TPOT = _latency(
    "tpot_ms", "TPOT",
    "OpenAI-style streams: time per output token after the first, (duration - TTFT) / (output tokens - 1) "
    "per stream (what AIPerf and guidellm call inter-token latency)",
    population="ok streams", threshold_stats=PERCENTILE_STATS, compared_stats=("p50", "p99"), console=True)
ITL = _latency(
    "itl_ms", "ITL",
    "OpenAI-style streams: inter-token latency as vLLM's benchmark counts it, between the reads that "
    "completed two consecutive chunks carrying output (a chunk of several tokens is one gap)",
    threshold_stats=PERCENTILE_STATS)
ITL_PER_TOKEN = _latency(
    "itl_per_token_ms", "ITL per token",
    "OpenAI-style streams: each gap of ITL divided by the tokens its later chunk carried, one sample per token "
    "(chunks whose tokens are unknown, with only a final usage chunk and no tokenizer, are left out)",
    threshold_stats=PERCENTILE_STATS)
MAX_STALL = _latency(
    "max_stall_ms", "largest stall",
    "LLM streams: each stream's largest gap between two consecutive chunks carrying output: the longest its answer "
    "froze (a stream that stops for 5 s fails its user whatever its average)",
    threshold_stats=PERCENTILE_STATS, compared_stats=("p99",))
TOKENS_PER_S = Metric(
    "tokens_per_s", "output tokens/s per user", "tokens/s", "distribution",
    "LLM streams: each ok stream's output tokens per second of its duration (what one user reads at)",
    higher_is_worse=False, population="ok streams", stats=PERCENTILE_STATS, fmt=".0f")
PREFILL_TOKENS_PER_S = Metric(
    "prefill_tokens_per_s", "prefill throughput", "tokens/s", "distribution",
    "LLM streams with usage: each stream's prompt tokens per second of its TTFT",
    higher_is_worse=False, stats=PERCENTILE_STATS, fmt=".0f")
TTFT_FROM_SCHEDULE = _latency(
    "ttft_from_schedule_ms", "TTFT from scheduled start",
    "open model, LLM streams: schedule lag plus TTFT, what a user arriving on schedule waited for the first token "
    "(no coordinated omission)",
    threshold_stats=PERCENTILE_STATS)
TTFB = _latency(
    "ttfb_ms", "TTFB",
    "time to first byte: from when the request starts to go out to the read that completed the response head",
    threshold_stats=PERCENTILE_STATS)
GAP = _latency(
    "gap_ms", "gap",
    "between the reads that completed two consecutive events of a stream (0: read together)",
    threshold_stats=PERCENTILE_STATS, compared_stats=("p50", "p99"), console=True)
MAX_GAP = _latency(
    "max_gap_ms", "max gap per stream",
    "each stream's largest gap: the worst stall its user saw",
    threshold_stats=PERCENTILE_STATS)
DURATION = _latency(
    "duration_ms", "duration",
    "from when the request starts to go out to the read that ended the stream",
    population="ok streams", threshold_stats=PERCENTILE_STATS, compared_stats=("p95",), console=True)
HEADROOM = _latency(
    "headroom_ms", "headroom to the limit",
    "the gateway's limit minus each completed stream's duration: how close it came to being cut",
    higher_is_worse=False)
SCHEDULE_LAG = _latency(
    "schedule_lag_ms", "schedule lag",
    "open model: from a stream's scheduled start to when its request started to go out")
TTFE_FROM_SCHEDULE = _latency(
    "ttfe_from_schedule_ms", "TTFE from scheduled start",
    "open model: schedule lag plus TTFE, what a user arriving on schedule waited (no coordinated omission)",
    threshold_stats=PERCENTILE_STATS)
RECONNECT = _latency(
    "reconnect_ms", "time to reconnect",
    "reconnect mode: from the read that ended a feed's connection to the next connection's request (the "
    "server's retry: or reconnect_ms, and signing)",
    threshold_stats=PERCENTILE_STATS)
FEED_GAP = _latency(
    "feed_gap_ms", "gap across a reconnect",
    "reconnect mode: from the last event before a reconnect to the first event after it: the stall the "
    "feed's user saw",
    threshold_stats=PERCENTILE_STATS, compared_stats=("p99",))
LATENESS = Metric(
    "lateness_ms", "event lateness", "ms", "distribution",
    "each event's receive time minus the send time the reference target embedded: the harness's own error",
    section="harness", stats=("p50", "p99", "p99.9"), fmt=".2f")
TTFE_ERROR = Metric(
    "ttfe_error_ms", "TTFE error", "ms", "distribution",
    "the lateness of each stream's first event: the harness's own error in TTFE",
    section="harness", stats=("p50", "p99"), fmt=".2f")


def _run(key: str, label: str, unit: str, definition: str, **kw) -> Metric:
    return Metric(key, label, unit, "scalar", definition, section="run", **kw)


STREAMS = _run("streams", "streams", "", "streams recorded, whatever their outcome",
               higher_is_worse=False, threshold_stats=(None,), fmt="d")
EVENTS = _run("events", "events", "", "events received, in every stream", higher_is_worse=False, fmt="d")
RUN_LENGTH = _run("duration_s", "run length", "s", "from the first stream's start to the last stream's end",
                  higher_is_worse=False)
STREAMS_PER_S = _run("streams_per_s", "streams started", "streams/s",
                     "streams started per second of the load window: the run time where known (not the drain "
                     "after it, when streams finish and none start), else the run length",
                     higher_is_worse=False, compared_stats=(None,))
EVENTS_PER_S = _run("events_per_s", "events received", "events/s", "events received per second of the run length",
                    higher_is_worse=False, threshold_stats=(None,), compared_stats=(None,), fmt=".0f")
BYTES_PER_S = _run("bytes_per_s", "bytes received", "bytes/s",
                   "response bytes (head and body) received per second of the run length",
                   higher_is_worse=False, fmt=".0f")
ERROR_RATE = _run("error_rate", "error rate", "",
                  "the share of streams whose outcome is an error (sseload.protocol.outcomes.ERROR_OUTCOMES)",
                  threshold_stats=(None,), compared_stats=(None,), fmt=".2%", noise_floor=0.01)
CUTOFF_RATE = _run("cutoff_rate", "cutoff rate", "", "the share of streams the gateway's limit ended",
                   threshold_stats=(None,), compared_stats=(None,), fmt=".2%", noise_floor=0.01)
OK_RATE = _run("ok_rate", "ok rate", "", "the share of streams completed by the scenario's completion rule",
               higher_is_worse=False, fmt=".2%")
OUTPUT_TOKENS = _run("output_tokens", "output tokens", "",
                     "OpenAI-style streams: output tokens of every stream (usage.completion_tokens, else the "
                     "chunks carrying output, one token each: summary.json's tokens_from says which)",
                     higher_is_worse=False, fmt="d")
OUTPUT_TOKENS_PER_S = _run("output_tokens_per_s", "output token throughput", "tokens/s",
                           "OpenAI-style streams: output tokens per second of the run length",
                           higher_is_worse=False, threshold_stats=(None,), compared_stats=(None,), fmt=".0f")
GOODPUT = _run("goodput", "goodput", "streams/s",
               "LLM streams: ok streams meeting every [slo] objective (ttft_ms, answer_ttft_ms, tpot_ms, "
               "max_stall_ms, e2e_ms) per second of the load window",
               higher_is_worse=False, threshold_stats=(None,), compared_stats=(None,), fmt=".2f")
SLO_RATE = _run("slo_rate", "share meeting the SLOs", "",
                "OpenAI-style streams: the share of streams that ended ok and met every [slo] objective",
                higher_is_worse=False, threshold_stats=(None,), fmt=".2%", noise_floor=0.01)
ABANDON_RATE = _run("abandon_rate", "abandon rate", "",
                    "LLM streams with [load] patience_s: the share of streams whose user gave up before the first "
                    "output token", threshold_stats=(None,), compared_stats=(None,), fmt=".2%", noise_floor=0.01)
TOKENIZER_VS_USAGE = Metric(
    "tokenizer_vs_usage", "tokenizer against usage", "", "scalar",
    "LLM streams with both a [stream] tokenizer and the server's usage: the tokenizer's count over the usage's, "
    "less one (0: they agree)", section="harness", fmt="+.1%")
CONVERSATIONS = _run("conversations", "conversations", "",
                     "multi-turn ([body] multi_turn): conversations begun, each turn a stream sent after the answer "
                     "before it, with the history", higher_is_worse=False, fmt="d")
FEEDS = _run("feeds", "feeds", "", "reconnect mode: feeds run, each one user's long-lived stream over its connections",
             higher_is_worse=False, fmt="d")
RECONNECTS = _run("reconnects", "reconnects", "", "reconnect mode: connections that ended and whose feed reconnected",
                  fmt="d")
MISSED_EVENTS = _run("missed_events", "events missed across reconnects", "",
                     "reconnect mode: event ids skipped between the last event before a reconnect and the first "
                     "after it (numeric ids only): what resuming from Last-Event-ID lost",
                     threshold_stats=(None,), fmt="d")
EVENTS_READ_TOGETHER = Metric(
    "events_read_together", "events read together with the one before", "", "scalar",
    "events that arrived in the same read as the event before them, so carry that read's (the later) time",
    section="harness", fmt="d")

#: Every metric of the summary, in the order reports show them.
METRICS: tuple[Metric, ...] = (
    TTFE, TTFT, ANSWER_TTFT, TTST, TPOT, ITL, ITL_PER_TOKEN, MAX_STALL, TOKENS_PER_S, PREFILL_TOKENS_PER_S,
    TTFT_FROM_SCHEDULE, TTFB, GAP, MAX_GAP, DURATION, HEADROOM, SCHEDULE_LAG, TTFE_FROM_SCHEDULE, RECONNECT, FEED_GAP,
    LATENESS, TTFE_ERROR, TOKENIZER_VS_USAGE, STREAMS, EVENTS, RUN_LENGTH, STREAMS_PER_S, EVENTS_PER_S, BYTES_PER_S,
    ERROR_RATE, CUTOFF_RATE, OK_RATE, ABANDON_RATE, OUTPUT_TOKENS, OUTPUT_TOKENS_PER_S, GOODPUT, SLO_RATE,
    CONVERSATIONS, FEEDS, RECONNECTS, MISSED_EVENTS, EVENTS_READ_TOGETHER,
)
BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
#: The rows of the percentile tables (summary.md, report.html); CONSOLE: the console's few.
LATENCY: tuple[Metric, ...] = tuple(m for m in METRICS if m.section == "latency")
CONSOLE: tuple[Metric, ...] = tuple(m for m in LATENCY if m.console)
#: What an LLM engineer reads first: for a run of LLM streams, these lead every table and view.
LLM_FIRST: tuple[Metric, ...] = (TTFT, ANSWER_TTFT, TTST, TPOT, ITL, ITL_PER_TOKEN, MAX_STALL, TOKENS_PER_S,
                                 PREFILL_TOKENS_PER_S, TTFT_FROM_SCHEDULE)


def latency_rows(llm: bool) -> tuple[Metric, ...]:
    """The percentile tables' rows in the order a run's readers want them: for LLM streams the token
    metrics first (TTFE, the first event of any kind, below them); else LATENCY's order."""
    if not llm:
        return LATENCY
    return LLM_FIRST + tuple(m for m in LATENCY if m not in LLM_FIRST)


def console_rows(llm: bool) -> tuple[Metric, ...]:
    """The console's short table, in latency_rows' order."""
    return tuple(m for m in latency_rows(llm) if m.console)

#: Streams open at one moment (``sseload.views.results.active_streams_at``): a series over a run, not a summary number.
ACTIVE_STREAMS = "active streams"
#: The colour of each percentile's line or mark, in the report's charts and the web UI's alike.
MARK_COLOURS = {"p50": "#2ca02c", "p95": "#ff7f0e", "p99": "#d62728"}


def distribution_rows(summary: Mapping, metrics: Iterable[Metric] = LATENCY,
                      unmeasured: bool = False) -> Iterator[tuple[Metric, dict]]:
    """(metric, its percentiles dict) for each of ``metrics`` the summary measured anything of.

    The one source of every percentile table: the console's, summary.md's and report.html's.
    ``unmeasured``: also the metrics the summary holds with no sample (a row of dashes says so).
    """
    for metric in metrics:
        values = summary.get(metric.key)
        if values and (unmeasured or values.get("count")):
            yield metric, values


@dataclass(frozen=True)
class Threshold:
    """A ``[thresholds]`` name: the metric (and stat) it limits, and which way."""

    name: str
    metric: str  # a key of BY_KEY
    stat: str | None  # None for a scalar
    rule: Literal["<=", ">="]

    def actual(self, summary: Mapping) -> float | None:
        return BY_KEY[self.metric].value(summary, self.stat)

    def passes(self, actual: float | None, limit: float) -> bool:
        if actual is None:  # nothing measured (e.g. no event at all): a threshold cannot pass on air
            return False
        return actual <= limit if self.rule == "<=" else actual >= limit


def _threshold_name(metric: Metric, stat: str | None) -> str:
    if stat is None:  # scalars keep their historical names: error_rate_max, min_streams
        return f"{metric.key}_max" if metric.higher_is_worse else f"min_{metric.key}"
    suffix = f"_{metric.unit}"
    if not metric.key.endswith(suffix):
        raise ValueError(f"metric {metric.key}: a threshold's name ends in its unit, {suffix}")
    return f"{metric.key.removesuffix(suffix)}_{stat}{suffix}"  # ttfe_p95_ms


def _thresholds() -> dict[str, Threshold]:
    table: dict[str, Threshold] = {}
    for metric in METRICS:
        for stat in metric.threshold_stats:
            name = _threshold_name(metric, stat)
            table[name] = Threshold(name, metric.key, stat, "<=" if metric.higher_is_worse else ">=")
    return table


#: Every name a scenario's [thresholds] table may use.
THRESHOLDS: dict[str, Threshold] = _thresholds()

__all__ = [
    "ABANDON_RATE", "ACTIVE_STREAMS", "ANSWER_TTFT", "BY_KEY", "LLM_FIRST", "MAX_STALL", "PREFILL_TOKENS_PER_S",
    "TOKENIZER_VS_USAGE", "TOKENS_PER_S", "TTFT_FROM_SCHEDULE", "TTST", "console_rows", "latency_rows",
    "BYTES_PER_S", "CONSOLE", "CONVERSATIONS", "CUTOFF_RATE", "DURATION", "ERROR_RATE",
    "EVENTS", "EVENTS_PER_S", "EVENTS_READ_TOGETHER", "FEEDS", "FEED_GAP", "GAP", "GOODPUT", "HEADROOM", "ITL",
    "ITL_PER_TOKEN", "LATENCY",
    "LATENESS", "MAX_GAP", "METRICS", "MISSED_EVENTS", "OK_RATE", "OUTPUT_TOKENS", "OUTPUT_TOKENS_PER_S",
    "PERCENTILE_STATS", "RECONNECT", "RECONNECTS", "RUN_LENGTH", "SCHEDULE_LAG", "SLO_RATE", "STREAMS",
    "STREAMS_PER_S", "THRESHOLDS", "TPOT", "TTFB", "TTFE", "TTFE_ERROR", "TTFE_FROM_SCHEDULE", "TTFT",
    "Metric", "Threshold", "distribution_rows",
]
