"""The summary as the terminal shows it at the end of `sseload run`, and the harness's health in words.

Labels, units and the rows of the percentile table come from :mod:`sseload.record.metrics`; the
numbers from :func:`sseload.views.results.summarise`. Pure text: nothing here imports the client,
gevent or httptools, so `sseload report` and `sseload check` stay light.
"""

from __future__ import annotations

from collections.abc import Mapping

from sseload.record import redact
from sseload.record.metrics import (
    CONSOLE,
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
    SLO_RATE,
    STREAMS,
    STREAMS_PER_S,
    TTFT,
    Metric,
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


def token_line(s: Mapping) -> str:
    """OpenAI-style streams: the output tokens (and where their count came from), throughput, goodput."""
    sources = ", ".join(f"{k}: {v} streams" for k, v in sorted((s.get("tokens_from") or {}).items()))
    line = (f"{OUTPUT_TOKENS.label} {s['output_tokens']}" + (f" (from {sources})" if sources else "")
            + ", " + ", ".join(f"{m.label} {m.quantity(m.value(s))}" for m in (OUTPUT_TOKENS_PER_S, GOODPUT, SLO_RATE)))
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
    lines = [
        f"run {s['run_id']}: {s['streams']} {STREAMS.label} in {s['duration_s']:.1f} s "
        f"({STREAMS_PER_S.quantity(s['streams_per_s'])}, {EVENTS_PER_S.quantity(s['events_per_s'])})",
        f"outcomes: {outcomes}",
        f"{'':<{LABEL_WIDTH}}" + "".join(f"{stat:>{STAT_WIDTH}}" for stat in PERCENTILE_STATS),
    ]
    for metric, p in distribution_rows(s, CONSOLE, unmeasured=True):
        lines.append(f"{metric.label + ' ' + metric.unit:<{LABEL_WIDTH}}"
                     + "".join(f"{metric.format(p.get(stat)):>{STAT_WIDTH}}" for stat in PERCENTILE_STATS))
    late = stats_text(s, LATENESS)
    if late:
        lines.append(f"{delay_heading(s)}: {late} (against the {'target' if s.get('embedded_target') else 'service'}"
                     "'s send times)")
    if "output_tokens" in s:
        lines.append(token_line(s))
    if s.get("feeds"):
        lines.append(feed_line(s))
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


__all__ = ["cpu_usage", "feed_line", "format_summary", "read_timing", "stats_text", "token_line"]


class Progress:
    """The line `sseload run` shows while the load runs: elapsed of total, streams, events/s,
    TTFE p50 and errors, from the live numbers (sseload.views.live). On a terminal one line rewritten
    in place; elsewhere (CI logs) a plain line every PLAIN_EVERY_S."""

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
        from sseload.protocol.outcomes import ERROR_OUTCOMES
        from sseload.record.metrics import TTFE

        elapsed = live.elapsed_s()
        window, seconds = live.window()
        finished = live.streams_finished
        errors = sum(n for o, n in live.run.outcomes.items() if o in ERROR_OUTCOMES)
        share = f" ({errors / finished:.1%})" if finished else ""
        ttfe = window.hist[TTFE.key].percentile(50)
        of = f" of {total_s:.0f} s" if total_s else ""
        return (f"sseload: {elapsed:.0f} s{of} | {finished} {STREAMS.label} ended, {active} open | "
                f"{window.events / seconds:,.0f} {EVENTS_PER_S.unit} | {TTFE.label} p50 "
                f"{TTFE.quantity(ttfe)} | errors {errors}{share}")

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
