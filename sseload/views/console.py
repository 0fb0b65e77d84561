"""The summary as the terminal shows it at the end of `sseload run`, and the harness's health in words.

Labels, units and the rows of the percentile table come from :mod:`sseload.record.metrics`; the
numbers from :func:`sseload.views.results.summarise`. Pure text: nothing here imports the client,
gevent or httptools, so `sseload report` and `sseload check` stay light.
"""

from __future__ import annotations

from collections.abc import Mapping

from sseload.record import redact
from sseload.record.metrics import (
    ABANDON_RATE,
    CONVERSATIONS,
    EVENTS_PER_S,
    FEED_GAP,
    FEEDS,
    GOODPUT,
    LATENESS,
    MISSED_EVENTS,
    OUTPUT_TOKENS,
    OUTPUT_TOKENS_PER_S,
    PERCENTILE_STATS,
    RECONNECT,
    RECONNECTS,
    SCHEDULE_LAG,
    SLO_RATE,
    STREAMS,
    STREAMS_PER_S,
    TOKENIZER_VS_USAGE,
    TOKENS_PER_S,
    TTFE,
    TTFT,
    Metric,
    console_rows,
    distribution_rows,
)

LABEL_WIDTH = 14
STAT_WIDTH = 9


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cpu_usage(health: Mapping) -> str:
    """The harness's CPU peak in words, with the quota it is a share of where it ran under one."""
    peak = health.get("cpu_max_percent")
    text = f"CPU max {peak:.0f}%" if peak is not None else "CPU max -"
    if health.get("cpu_quota_cores") is not None:
        text += f" of a {health['cpu_quota_cores']:g}-core quota"
        if health.get("cpu_throttled_percent") is not None:
            text += f" (throttled in {health['cpu_throttled_percent']:.1f}% of its periods)"
    return text


def read_timing(health: Mapping) -> str:
    """How the reads of a run were timed, in words: the share the kernel timed, the reader's nice."""
    reads = health.get("reader_reads")
    if not reads:
        return "reads timed as they returned, on the event loop"
    text = f"{100.0 * (health.get('reader_stamped') or 0) / reads:.0f}% of reads timed by the kernel"
    if health.get("reader_window_ms"):
        text += f" (read every {health['reader_window_ms']:g} ms)"
    if health.get("reader_nice") is not None:
        text += f", reader thread at nice {health['reader_nice']}"
    return text


def stats_text(summary: Mapping, metric: Metric) -> str:
    """A distribution in words: ``event lateness p50 0.01 ms, p99 0.07 ms, p99.9 0.12 ms``; "" when unmeasured."""
    values = summary.get(metric.key) or {}
    if not values.get("count"):
        return ""
    return f"{metric.label} " + ", ".join(f"{stat} {metric.quantity(values.get(stat))}" for stat in metric.stats)


def delay_heading(s: Mapping) -> str:
    """Against the reference target sseload started, lateness is the harness's own error; against any
    other service, the delivery delay of network, proxies and harness together."""
    return "harness error" if s.get("embedded_target") else "delivery delay (network, proxies and harness)"


def error_lines(s: Mapping, top: int = 5) -> list[str]:
    """The most frequent ways streams failed, grouped by cause, with their status and gateway code."""
    errors = (s.get("top_errors") or [])[:top]
    if not errors:
        return []
    lines = ["errors, by cause (streams, outcome, status, code: what happened):"]
    for e in errors:
        where = " ".join(str(x) for x in (e["status"] or "", e["error_code"]) if x)
        lines.append(redact.visible(f"  {e['streams']:>6}  {e['outcome']}{' ' + where if where else ''}: "
                                    f"{redact.visible(e['cause'], 200)}"))
    return lines


def feed_line(s: Mapping) -> str:
    """Reconnect mode: the feeds, their reconnects and what those cost their users."""
    line = f"{FEEDS.label}: {s['feeds']}, {RECONNECTS.label} {s['reconnects']}"
    for metric in (RECONNECT, FEED_GAP):
        values = s.get(metric.key) or {}
        if values.get("count"):
            line += (f"; {metric.label} p50 {metric.quantity(values.get('p50'))}, "
                     f"p99 {metric.quantity(values.get('p99'))}")
    return line + f"; {MISSED_EVENTS.label} {s.get('missed_events', 0)}"


def is_llm(s: Mapping) -> bool:
    """A summary of LLM streams (sseload.views.summary.has_tokens): its views lead with TTFT, TPOT and tokens/s."""
    return OUTPUT_TOKENS.key in s


def token_line(s: Mapping) -> str:
    """LLM streams: the output tokens (and where their count came from), throughput in all and per user,
    goodput; streams abandoned, and the tokenizer against the usage, where there were any."""
    sources = ", ".join(f"{k}: {v} streams" for k, v in sorted((s.get("tokens_from") or {}).items()))
    per_user = (s.get(TOKENS_PER_S.key) or {}).get("p50")
    line = (f"{OUTPUT_TOKENS.label} {s['output_tokens']}" + (f" (from {sources})" if sources else "")
            + f", {OUTPUT_TOKENS_PER_S.label} {OUTPUT_TOKENS_PER_S.quantity(s.get(OUTPUT_TOKENS_PER_S.key))}"
            + (f", {TOKENS_PER_S.label} p50 {TOKENS_PER_S.quantity(per_user)}" if per_user is not None else "")
            + ", " + ", ".join(f"{m.label} {m.quantity(m.value(s))}" for m in (GOODPUT, SLO_RATE)))
    for metric in (ABANDON_RATE, TOKENIZER_VS_USAGE):
        if metric.key in s:
            line += f", {metric.label} {metric.quantity(metric.value(s))}"
    finished = s.get("finish_reasons") or {}
    if set(finished) - {"stop"}:  # streams cut by max_tokens or a content filter change what tokens/s means
        line += "; finish_reason " + ", ".join(f"{k} {v}" for k, v in sorted(finished.items(), key=lambda kv: -kv[1]))
    if s.get("conversations"):
        by_turn = s.get("ttft_by_turn_ms") or {}
        line += f"; {s['conversations']} {CONVERSATIONS.label}, {TTFT.label} p50 by turn " + ", ".join(
            f"{turn}: {TTFT.quantity(p.get('p50'))}" for turn, p in sorted(by_turn.items(), key=lambda kv: int(kv[0])))
    return line


def format_summary(s: Mapping) -> str:
    """The lines `sseload run` prints when a run ends (the README shows an example)."""
    outcomes = ", ".join(f"{k} {v}" for k, v in s["outcomes"].items())
    llm = is_llm(s)
    table = list(distribution_rows(s, console_rows(llm), unmeasured=True))
    width = max([LABEL_WIDTH - 1] + [len(f"{m.label} {m.unit}") for m, _ in table]) + 1
    lines = [
        f"run {s['run_id']}: {s['streams']} {STREAMS.label} in {s['duration_s']:.1f} s "
        f"({STREAMS_PER_S.quantity(s['streams_per_s'])}, {EVENTS_PER_S.quantity(s['events_per_s'])})",
        f"outcomes: {outcomes}",
        f"{'':<{width}}" + "".join(f"{stat:>{STAT_WIDTH}}" for stat in PERCENTILE_STATS),
    ]
    for metric, p in table:
        lines.append(f"{metric.label + ' ' + metric.unit:<{width}}"
                     + "".join(f"{metric.format(p.get(stat)):>{STAT_WIDTH}}" for stat in PERCENTILE_STATS))
    if llm:  # the tokens and their rates, right under the token latencies
        lines.append(token_line(s))
    late = stats_text(s, LATENESS)
    if late:
        lines.append(f"{delay_heading(s)}: {late} (against the {'target' if s.get('embedded_target') else 'service'}"
                     "'s send times)")
    if s.get("feeds"):
        lines.append(feed_line(s))
    if s.get("trace"):
        lines.append(trace_line(s))
    buffered = s.get("buffered_streams") or 0
    if buffered:
        lines.append(f"note: {buffered} of {s['streams']} streams arrived all at once (every event in one read): a "
                     "buffering proxy or a server writing them together; their gaps and TTFE describe that buffer")
    together = s.get("events_read_together") or 0
    if together and s.get("events"):
        lines.append(
            f"note: {together} events ({100 * together / s['events']:.1f}%) arrived in the same read as the "
            "event before them and carry its time (sent together, or closer than the reader's window)"
        )
    health = s.get("health") or {}
    if health.get("samples"):
        line = f"harness health: loop lag p99 {_fmt(health.get('loop_lag_p99_ms'), 2)} ms, "
        if health.get("reader_lag_p99_ms") is not None:
            line += f"reader thread lag p99 {_fmt(health.get('reader_lag_p99_ms'), 2)} ms, "
        line += f"{cpu_usage(health)}; {read_timing(health)}"
        if health.get("skewed"):
            line += " -- measurement may be skewed (" + "; ".join(health["skew_reasons"]) + "): add workers"
        lines.append(line)
    lines += error_lines(s)
    if s.get("partial"):
        lines.append(f"PARTIAL RUN: {s.get('partial_reason')}")
    return redact.terminal("\n".join(lines))  # a server's text steers no terminal (sseload.record.redact)


def trace_line(s: Mapping) -> str:
    """A trace replay's sentence (console, summary.md): how late its requests started, and whether it was kept."""
    t = s["trace"]
    kept = "kept" if t["kept"] else "NOT KEPT (add users or workers; the late starts are recorded, not moved)"
    return (f"trace {t['file']}: {t['streams']} requests, {SCHEDULE_LAG.label} p99 "
            f"{t['schedule_lag_p99_ms']:.2f} {SCHEDULE_LAG.unit}, "
            f"{t['late_streams']} started over {t['late_ms']:g} ms late: {kept}")


__all__ = ["cpu_usage", "feed_line", "format_summary", "is_llm", "read_timing", "stats_text", "token_line",
           "trace_line"]


class Progress:
    """The line `sseload run` shows while the load runs: elapsed of total, streams, events/s, TTFE
    p50 (LLM streams: TTFT p50 and p99, output tokens/s) and errors, from the live numbers
    (sseload.views.live). On a terminal one line rewritten in place; elsewhere (CI logs) a plain
    line every PLAIN_EVERY_S."""

    PLAIN_EVERY_S = 10.0

    def __init__(self, stream, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self._last_plain = float("-inf")
        self._width = 0

    @classmethod
    def to_stderr(cls) -> Progress:
        import sys

        return cls(sys.stderr, sys.stderr.isatty())

    @staticmethod
    def line(live, active: int, total_s: float | None) -> str:
        """LLM streams (the live numbers saw a token): TTFT p50 and p99 and output tokens/s where
        other runs show TTFE p50."""
        from sseload.protocol.outcomes import ERROR_OUTCOMES

        elapsed = live.elapsed_s()
        window, seconds = live.window()
        finished = live.streams_finished
        errors = sum(n for o, n in live.run.outcomes.items() if o in ERROR_OUTCOMES)
        share = f" ({errors / finished:.1%})" if finished else ""
        if live.llm:
            ttft = window.hist[TTFT.key]
            latency = (f"{TTFT.label} p50 {TTFT.quantity(ttft.percentile(50))}, "
                       f"p99 {TTFT.quantity(ttft.percentile(99))} | {window.tokens / seconds:,.0f} "
                       f"{OUTPUT_TOKENS_PER_S.unit}")
        else:
            latency = f"{TTFE.label} p50 {TTFE.quantity(window.hist[TTFE.key].percentile(50))}"
        of = f" of {total_s:.0f} s" if total_s else ""
        return (f"sseload: {elapsed:.0f} s{of} | {finished} {STREAMS.label} ended, {active} open | "
                f"{window.events / seconds:,.0f} {EVENTS_PER_S.unit} | {latency} | errors {errors}{share}")

    def show(self, live, active: int, total_s: float | None) -> None:
        text = self.line(live, active, total_s)
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            elapsed = live.elapsed_s()
            if elapsed - self._last_plain < self.PLAIN_EVERY_S:
                return
            self._last_plain = elapsed
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
