"""Reports from a run's files: report.html (self-contained), summary.md, summary.json; and compare.

Nothing here measures anything: numbers come from :func:`sseload.views.results.summarise`, so a
report can be regenerated from ``results/<run>/`` at any time without re-running the load.
"""

from __future__ import annotations

import html
import json
import os
import sys
from pathlib import Path

from sseload.protocol.outcomes import ERROR_OUTCOMES
from sseload.record.metrics import (
    ABANDON_RATE,
    BYTES_PER_S,
    CUTOFF_RATE,
    ERROR_RATE,
    EVENTS,
    EVENTS_PER_S,
    EVENTS_READ_TOGETHER,
    GOODPUT,
    LATENESS,
    METRICS,
    OK_RATE,
    OUTPUT_TOKENS,
    OUTPUT_TOKENS_PER_S,
    PERCENTILE_STATS,
    RUN_LENGTH,
    SLO_RATE,
    STREAMS,
    STREAMS_PER_S,
    TTFE_ERROR,
    Metric,
    distribution_rows,
    latency_rows,
)
from sseload.record.redact import markdown as md
from sseload.run import room
from sseload.views import charts, results, server_charts
from sseload.views.console import (
    delay_heading,
    feed_line,
    format_summary,
    is_llm,
    read_timing,
    stats_text,
    token_line,
    trace_line,
)

#: The run's scalars, in the order report.html's summary table shows them.
RUN_METRICS = tuple(m for m in METRICS if m.section == "run")
#: An LLM run's summary table leads with its tokens.
LLM_RUN_FIRST = (OUTPUT_TOKENS_PER_S, OUTPUT_TOKENS, GOODPUT, SLO_RATE, ABANDON_RATE)


def run_rows(summary: dict) -> list[Metric]:
    """The scalars the summary holds, in the order report.html's summary table shows them."""
    first = LLM_RUN_FIRST if is_llm(summary) else ()
    return [m for m in (*first, *(m for m in RUN_METRICS if m not in first)) if m.key in summary]


def _num(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _said(metric: Metric, summary: dict) -> str:
    """``error rate 1.00%``: a scalar with its label, as a sentence names it."""
    return f"{metric.label} {metric.quantity(metric.value(summary))}"


def summary_markdown(summary: dict) -> str:
    verdict = summary.get("verdict")
    lines = [
        f"### sseload run `{summary['run_id']}`",
        "",
    ]
    if verdict:
        lines += [f"**{'PASS' if verdict['passed'] else 'FAIL'}**"
                  + "".join(f"\n- {md(text)}" for text in verdict["failures"] + verdict["warnings"]), ""]
    lines += [
        f"{summary['streams']} {STREAMS.label}, {summary['events']} {EVENTS.label}, {_said(RUN_LENGTH, summary)}: "
        + ", ".join(_said(m, summary) for m in (STREAMS_PER_S, EVENTS_PER_S, BYTES_PER_S)) + "; "
        + ", ".join(_said(m, summary) for m in (ERROR_RATE, CUTOFF_RATE, OK_RATE)) + ".",
        "",
        "| metric | " + " | ".join(PERCENTILE_STATS) + " |",
        "|---|" + "---:|" * len(PERCENTILE_STATS),
    ]
    for metric, p in distribution_rows(summary, latency_rows(is_llm(summary))):
        lines.append(f"| {metric.heading} | " + " | ".join(metric.format(p.get(k)) for k in PERCENTILE_STATS) + " |")
    if is_llm(summary):  # the tokens, right under the token latencies
        lines += ["", "Tokens: " + md(token_line(summary)) + "."]
    for missing in summary.get("missing") or []:
        lines += ["", f"**{missing}**"]
    lines += ["", "| outcome | streams |", "|---|---:|"]
    lines += [f"| {md(k)} | {v} |" for k, v in summary["outcomes"].items()]
    harness = [text for text in (stats_text(summary, LATENESS), stats_text(summary, TTFE_ERROR)) if text]
    if harness:
        against = "the target's" if summary.get("embedded_target") else "the service's"
        heading = delay_heading(summary).capitalize()
        lines += ["", f"{heading} against {against} send times: " + "; ".join(harness) + "."]
    if summary.get("feeds"):
        lines += ["", feed_line(summary) + "."]
    if summary.get("trace"):
        lines += ["", md(trace_line(summary)) + "."]
    if summary.get("buffered_streams"):
        lines += ["", f"**{summary['buffered_streams']} of {summary['streams']} streams arrived all at once** (every "
                      "event in one read): a buffering proxy or a server writing them together."]
    together = summary.get(EVENTS_READ_TOGETHER.key) or 0
    if together:
        lines += ["", f"{together} of {summary['events']} {EVENTS_READ_TOGETHER.label}: they carry the time "
                      "of the read they shared (sent together, or closer than the reader's window)."]
    health = summary.get("health") or {}
    if health.get("skewed"):
        lines += ["", "**Measurement may be skewed:** " + "; ".join(health["skew_reasons"]) + ". Add workers."]
    if summary.get("partial"):
        lines += ["", f"**Partial run:** {md(summary.get('partial_reason'))}"]
    return "\n".join(lines) + "\n"


def _table(headers: list[str], rows: list[list[str]], flagged: set[int] = frozenset()) -> str:
    """An HTML table; the rows numbered in ``flagged`` are highlighted (class bad)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(("<tr class='bad'>" if i in flagged else "<tr>") + "".join(f"<td>{html.escape(c)}</td>" for c in r)
                   + "</tr>" for i, r in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


ECHARTS_JS = Path(__file__).parents[1] / "static" / "echarts.common.min.js"  # Apache ECharts, shipped (no network)


def _charts_block(made: list[charts.Chart], images: list[Path]) -> str:
    """Interactive charts (ECharts, embedded: the file stays self-contained and works offline), each
    with a link to its PNG (charts/, for summary.md and pull requests)."""
    options, parts = {}, []
    pngs = {p.stem: p for p in images}
    for chart in made:
        divs = []
        for i, option in enumerate(charts.echarts_options(chart)):
            key = f"chart-{chart.name}-{i}"
            options[key] = option
            divs.append(f"<div class='chart' id='{key}'></div>")
        png = pngs.get(chart.name)
        link = f"<a class='png' href='charts/{html.escape(png.name)}'>PNG</a>" if png is not None else ""
        parts.append(f"<figure class='charts' data-chart='{html.escape(chart.name)}'>{''.join(divs)}{link}</figure>")
    data = json.dumps(options, allow_nan=False, default=str).replace("</", "<\\/")
    script = ("<script>" + ECHARTS_JS.read_text(encoding="utf-8") + "</script><script>(function(){var o=" + data
              + ";var made=[];Object.keys(o).forEach(function(k){var c=echarts.init(document.getElementById(k));"
              "c.setOption(o[k]);made.push(c);});window.addEventListener('resize',function(){made.forEach("
              "function(c){c.resize();});});window.sseloadCharts=made;})();</script>")
    return "".join(parts) + script


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}
figure.charts{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 1.5em;position:relative}
.chart{flex:1 1 520px;height:340px;min-width:0}a.png{position:absolute;right:0;top:0;font-size:12px}
.warn{background:#fff3cd;border:1px solid #e0c36a;padding:0.6em 1em}tr.bad td{background:#fdecea;font-weight:bold}
#verdict{padding:0.8em 1.2em;margin:1em 0;border-radius:4px;font-size:1.1em}#verdict strong{font-size:1.4em}
#verdict.pass{background:#e6f4ea;border:2px solid #2ca02c}#verdict.fail{background:#fdecea;border:2px solid #d62728}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}
"""


def _against_send_times(summary: dict, metric: Metric) -> list[str]:
    """A health table row of the harness's own error: ``event lateness vs server send time p50 / p99 (ms)``."""
    values = summary.get(metric.key) or {}
    measured = " / ".join(metric.format(values.get(k)) for k in metric.stats)
    return [f"{metric.label} vs server send time {' / '.join(metric.stats)} ({metric.unit})",
            measured if values.get("count") else "no send times in events"]


def verdict_banner(verdict: dict | None) -> str:
    """The report's first block: PASS or FAIL, why, and what to know before reading the numbers."""
    if not verdict:
        return ""
    passed = verdict["passed"]
    items = "".join(f"<li>{html.escape(text)}</li>" for text in verdict["failures"] + verdict["warnings"])
    checks = verdict["thresholds"]
    shown = (f" ({sum(c['passed'] for c in checks)} of {len(checks)} thresholds passed)" if checks
             else " (no thresholds set: add a [thresholds] table to the scenario to judge the numbers)")
    return (f"<div id='verdict' class='{'pass' if passed else 'fail'}'><strong>{'PASS' if passed else 'FAIL'}"
            f"</strong>{shown}<ul>{items}</ul></div>")


def report_html(run: results.Run, summary: dict, made: list[charts.Chart], images: list[Path]) -> str:
    info = run.info
    run_id = html.escape(summary["run_id"])
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>sseload report {run_id}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>sseload report: {run_id}</h1>"]
    parts.append(verdict_banner(summary.get("verdict")))
    if summary.get("partial"):
        parts.append(f"<p class='warn' id='partial'>Partial run: {html.escape(str(summary.get('partial_reason')))}</p>")
    for missing in summary.get("missing") or []:
        parts.append(f"<p class='warn missing'>{html.escape(missing)}</p>")
    shown = run_rows(summary)
    bad = {i + 2 for i, m in enumerate(shown) if m in (ERROR_RATE, CUTOFF_RATE, ABANDON_RATE) and m.value(summary)}
    overview = "<h2>Summary</h2>" + _table(["", "value"], [
        ["target", str(info.get("target_url", "-"))],
        ["auth method", str(info.get("auth_method", "-"))],
        *([m.heading, m.format(m.value(summary))] for m in shown),
    ], flagged=bad)
    llm = is_llm(summary)
    latency = "<h2 id='latency'>Latency</h2>" + _table(
        ["metric", *PERCENTILE_STATS, "streams/events"],
        [[m.heading, *(m.format(p.get(k)) for k in PERCENTILE_STATS), str(p.get("count"))]
         for m, p in distribution_rows(summary, latency_rows(llm))])
    parts += [latency, overview] if llm else [overview, latency]  # LLM runs: TTFT, TPOT, ITL, tokens/s first
    parts.append("<h2>Outcomes</h2>")
    total = max(summary["streams"], 1)
    outcomes = list(summary["outcomes"].items())
    parts.append(_table(["outcome", "streams", "share"], [[k, str(v), f"{v / total:.2%}"] for k, v in outcomes],
                        flagged={i for i, (k, _) in enumerate(outcomes) if k in ERROR_OUTCOMES}))
    if summary.get("top_errors"):
        parts.append("<h3>Most frequent errors, by cause</h3>")
        parts.append(_table(["outcome", "status", "code", "what happened", "streams"],
                            [[e["outcome"], str(e["status"] or ""), e["error_code"], e["cause"][:200],
                              str(e["streams"])] for e in summary["top_errors"]]))
    parts.append("<h2>Charts</h2>")
    parts.append(_charts_block(made, images))
    parts.append("<h2 id='health'>Measurement health</h2>")
    health = summary.get("health") or {}
    rows = [
        ["event-loop lag p50 / p99 / max (ms)", " / ".join(_num(health.get(k), 2) for k in
                                                           ("loop_lag_p50_ms", "loop_lag_p99_ms", "loop_lag_max_ms"))],
        [f"reader ({health.get('reader', 'python')}) thread lag p50 / p99 / max (ms)",
         " / ".join(_num(health.get(k), 2) for k in ("reader_lag_p50_ms", "reader_lag_p99_ms", "reader_lag_max_ms"))
         if health.get("reader_lag_p99_ms") is not None else "reads timestamped on the event loop"],
        ["how reads were timed", read_timing(health)],
        [EVENTS_READ_TOGETHER.heading, EVENTS_READ_TOGETHER.format(summary.get(EVENTS_READ_TOGETHER.key, 0))],
        ["harness CPU mean / max (%)",
         f"{_num(health.get('cpu_mean_percent'), 0)} / {_num(health.get('cpu_max_percent'), 0)}"],
        ["CPU quota (cores) / periods throttled (%)",
         f"{health['cpu_quota_cores']:g} / {_num(health.get('cpu_throttled_percent'), 1)}"
         if health.get("cpu_quota_cores") is not None else "none (CPU % is of one core)"],
        *(_against_send_times(summary, m) for m in (LATENESS, TTFE_ERROR)),
        ["TLS verification", "OFF (--insecure)" if info.get("insecure_tls") else "on"],
    ]
    parts.append(_table(["", "value"], rows))
    if health.get("skewed"):
        parts.append("<p class='warn'>Measurement may be skewed: " + html.escape("; ".join(health["skew_reasons"]))
                     + ". Add Locust workers (<code>sseload run --workers N</code>) or fewer users per worker.</p>")
    parts.append("<h2>Scenario and environment</h2>")
    env = {k: info.get(k) for k in ("sseload_version", "locust_version", "python", "machine", "users",
                                    "spawn_rate", "run_time", "started_at", "ended_at")}
    parts.append(f"<pre>{html.escape(json.dumps(env, indent=2, default=str))}</pre>")
    parts.append(f"<pre>{html.escape(json.dumps(info.get('scenario', {}), indent=2, default=str))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


class NotWritten(results.ResultsError):
    """The report could not be written in the run's folder; the message says what to do. ``disk_full``:
    its disk is full (which the run's verdict counts: sseload.run.verdict)."""

    def __init__(self, text: str, disk_full: bool) -> None:
        super().__init__(text)
        self.disk_full = disk_full


def write_all(run: results.Run, summary: dict | None = None, verdict=None) -> list[Path]:
    """The report, the summaries and the charts in the run's folder, each file whole (never half of
    one); a folder that cannot take them (its disk is full) is :class:`NotWritten`, in a sentence that
    names it and says what to do."""
    try:
        return _write_all(run, summary, verdict)
    except OSError as err:
        full = room.is_disk_full(err)
        at = f", at {err.path.relative_to(run.run_dir)}" if isinstance(err, room.DiskFull) and \
            err.path.is_relative_to(run.run_dir) else ""
        why = f": the disk holding it is full ({os.strerror(err.errno)}{at});" if full else \
            f" ({err.strerror or err}):"
        raise NotWritten(f"the report could not be written in {run.run_dir}{why} free some space there, or copy the "
                         "run's folder elsewhere and run `sseload report` on the copy", full) from None


def _write_all(run: results.Run, summary: dict | None = None, verdict=None) -> list[Path]:
    summary = summary or results.summarise(run)
    if verdict is None:  # the run's verdict, as sseload.run.verdict decides it for every command
        from sseload.run.verdict import judge, limits_of

        verdict = judge(summary, run.info, limits_of(run.info))
    summary = {**summary, "verdict": verdict.to_dict()}
    out = run.run_dir
    made = charts.charts_of(run) + server_charts.charts_of(run)  # the service's own metrics (docs/server-metrics.md)
    images = charts.draw_all(run, out / "charts", made)
    paths = [out / "report.html", out / "summary.md", out / "summary.json"]
    # each replaced at once: whoever reads it (the web UI serving it while another report is written, a
    # browser) sees the old file or the new one, never half of one (the charts are written so too)
    room.write_whole(paths[0], report_html(run, summary, made, images))
    room.write_whole(paths[1], summary_markdown(summary))
    room.write_whole(paths[2], json.dumps(json.loads(json.dumps(summary, default=str), parse_constant=lambda _: None),
                                          indent=2, allow_nan=False))  # strict JSON: NaN and infinities null
    return paths


def finish(run_dir: Path, scenario=None, write_report: bool = True, unwritten: list[str] | None = None) -> int:
    """The end of every run, `sseload run`'s and plain `locust -f`'s alike: print the one summary,
    write the reports, say the verdict; the exit code is the verdict's (sseload.run.verdict, which
    `sseload check` asks too). ``unwritten``: the sentences of the run's files that its full disk
    could not take before this (Locust's CSVs: sseload.run.supervisor), which the verdict counts."""
    from sseload.run import verdict as run_verdict

    verdict, run, summary = run_verdict.of_run(run_dir, scenario)
    verdict.unwritten += unwritten or []
    if summary is not None:
        print(format_summary(summary))
    if not verdict.recorded:
        for text in verdict.unwritten:
            print(f"sseload: {text}", file=sys.stderr)
        print(f"sseload: no stream was recorded in {run_dir}; see the messages above", file=sys.stderr)
        return verdict.exit_code
    if write_report:
        try:
            write_all(run, summary, verdict)
        except NotWritten as err:  # the run's own files are kept: its verdict stands, a full disk with it
            if err.disk_full:
                verdict.unwritten.append(str(err))
            else:
                print(f"sseload: {err}", file=sys.stderr)
    run_verdict.say(verdict, Path(run_dir) / "thresholds.xml", summary["run_id"])
    print(run_dir)
    sys.stdout.flush()
    return verdict.exit_code
