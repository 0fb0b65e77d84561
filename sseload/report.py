"""Reports from a run's files: report.html (self-contained), summary.md, summary.json; and compare.

Nothing here measures anything: numbers come from :func:`sseload.results.summarise`, so a
report can be regenerated from ``results/<run>/`` at any time without re-running the load.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from sseload import charts, results
from sseload.health import read_timing

STAT_KEYS = ("p50", "p90", "p95", "p99", "max")
#: Metrics compared between runs: (summary key, stat, higher is worse)
COMPARED = (
    ("ttfe_ms", "p50", True), ("ttfe_ms", "p95", True), ("ttfe_ms", "p99", True),
    ("gap_ms", "p50", True), ("gap_ms", "p99", True), ("duration_ms", "p95", True),
    ("error_rate", None, True), ("cutoff_rate", None, True),
    ("streams_per_s", None, False), ("events_per_s", None, False),
)


def _num(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _percentile_rows(summary: dict) -> list[tuple[str, dict]]:
    rows = []
    for label, key in (("TTFE (ms)", "ttfe_ms"), ("TTFB (ms)", "ttfb_ms"), ("gap (ms)", "gap_ms"),
                       ("max gap per stream (ms)", "max_gap_ms"), ("duration, ok streams (ms)", "duration_ms"),
                       ("headroom to the limit (ms)", "headroom_ms"), ("schedule lag (ms)", "schedule_lag_ms"),
                       ("TTFE from scheduled start (ms)", "ttfe_from_schedule_ms")):
        if summary.get(key) and summary[key].get("count"):
            rows.append((label, summary[key]))
    return rows


def summary_markdown(summary: dict) -> str:
    lines = [
        f"### sseload run `{summary['run_id']}`",
        "",
        f"{summary['streams']} streams in {summary['duration_s']:.1f} s: "
        f"{summary['streams_per_s']:.1f} streams/s, {summary['events_per_s']:.0f} events/s; "
        f"error rate {summary['error_rate']:.2%}, cutoff rate {summary['cutoff_rate']:.2%}.",
        "",
        "| metric | p50 | p90 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, p in _percentile_rows(summary):
        lines.append(f"| {label} | " + " | ".join(_num(p.get(k)) for k in STAT_KEYS) + " |")
    lines += ["", "| outcome | streams |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in summary["outcomes"].items()]
    late = summary.get("lateness_ms") or {}
    if late.get("count"):
        lines += ["", f"Harness error (event lateness against the target's send times): "
                      f"p50 {_num(late['p50'], 2)} ms, p99 {_num(late['p99'], 2)} ms."]
    health = summary.get("health") or {}
    if health.get("skewed"):
        lines += ["", "**Measurement may be skewed:** " + "; ".join(health["skew_reasons"]) + ". Add workers."]
    if summary.get("partial"):
        lines += ["", f"**Partial run:** {summary.get('partial_reason')}"]
    return "\n".join(lines) + "\n"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"></figure>'


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}
.warn{background:#fff3cd;border:1px solid #e0c36a;padding:0.6em 1em}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}
"""


def report_html(run: results.Run, summary: dict, images: list[Path]) -> str:
    info = run.info
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>sseload report {html.escape(summary['run_id'])}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>sseload report: {html.escape(summary['run_id'])}</h1>"]
    if summary.get("partial"):
        parts.append(f"<p class='warn' id='partial'>Partial run: {html.escape(str(summary.get('partial_reason')))}</p>")
    parts.append("<h2>Summary</h2>")
    parts.append(_table(["", "value"], [
        ["target", str(info.get("target_url", "-"))],
        ["auth method", str(info.get("auth_method", "-"))],
        ["streams", str(summary["streams"])],
        ["run length (s)", _num(summary["duration_s"])],
        ["streams/s", _num(summary["streams_per_s"])],
        ["events/s", _num(summary["events_per_s"], 0)],
        ["bytes/s", _num(summary["bytes_per_s"], 0)],
        ["error rate", f"{summary['error_rate']:.2%}"],
        ["cutoff rate", f"{summary['cutoff_rate']:.2%}"],
    ]))
    parts.append("<h2>Latency</h2>")
    parts.append(_table(["metric", *STAT_KEYS, "streams/events"],
                        [[label, *(_num(p.get(k)) for k in STAT_KEYS), str(p.get("count"))]
                         for label, p in _percentile_rows(summary)]))
    parts.append("<h2>Outcomes</h2>")
    total = max(summary["streams"], 1)
    parts.append(_table(["outcome", "streams", "share"],
                        [[k, str(v), f"{v / total:.2%}"] for k, v in summary["outcomes"].items()]))
    errors = run.streams[run.streams["outcome"] != "ok"]
    if not errors.empty:
        top = errors.groupby(["outcome", "error_code", "error"]).size().sort_values(ascending=False).head(15)
        parts.append("<h3>Most frequent errors</h3>")
        parts.append(_table(["outcome", "code", "error", "streams"],
                            [[o, c or "", e[:200], str(n)] for (o, c, e), n in top.items()]))
    parts.append("<h2>Charts</h2>")
    parts += [_img(p) for p in images]
    parts.append("<h2 id='health'>Measurement health</h2>")
    health = summary.get("health") or {}
    late = summary.get("lateness_ms") or {}
    rows = [
        ["event-loop lag p50 / p99 / max (ms)", " / ".join(_num(health.get(k), 2) for k in
                                                           ("loop_lag_p50_ms", "loop_lag_p99_ms", "loop_lag_max_ms"))],
        [f"reader ({health.get('reader', 'python')}) thread lag p50 / p99 / max (ms)",
         " / ".join(_num(health.get(k), 2) for k in ("reader_lag_p50_ms", "reader_lag_p99_ms", "reader_lag_max_ms"))
         if health.get("reader_lag_p99_ms") is not None else "reads timestamped on the event loop"],
        ["how reads were timed", read_timing(health)],
        ["events read together with the one before (share its time)", str(summary.get("events_read_together", 0))],
        ["harness CPU mean / max (%)", f"{_num(health.get('cpu_mean_percent'), 0)} / {_num(health.get('cpu_max_percent'), 0)}"],
        ["CPU quota (cores) / periods throttled (%)",
         f"{health['cpu_quota_cores']:g} / {_num(health.get('cpu_throttled_percent'), 1)}"
         if health.get("cpu_quota_cores") is not None else "none (CPU % is of one core)"],
        ["event lateness vs server send time p50 / p99 / p99.9 (ms)",
         " / ".join(_num(late.get(k), 2) for k in ("p50", "p99", "p99.9")) if late.get("count") else "no send times in events"],
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


def write_all(run: results.Run, summary: dict | None = None) -> list[Path]:
    summary = summary or results.summarise(run)
    out = run.run_dir
    images = charts.draw_all(run, out / "charts")
    paths = [out / "report.html", out / "summary.md", out / "summary.json"]
    paths[0].write_text(report_html(run, summary, images))
    paths[1].write_text(summary_markdown(summary))
    paths[2].write_text(json.dumps(summary, indent=2, default=str))
    return paths


def _metric(summary: dict, key: str, stat: str | None) -> float | None:
    value = summary.get(key)
    if stat is not None:
        value = (value or {}).get(stat)
    return value


def compare(run_a: Path, run_b: Path, out: Path | None = None, tolerance: float = 0.10) -> tuple[list[Path], list[str]]:
    """Side-by-side of two runs; a metric that got worse by more than ``tolerance`` is a regression."""
    a = results.summarise(results.load(run_a))
    b = results.summarise(results.load(run_b))
    rows, regressions = [], []
    for key, stat, higher_is_worse in COMPARED:
        va, vb = _metric(a, key, stat), _metric(b, key, stat)
        name = f"{key} {stat}" if stat else key
        if va is None or vb is None:
            rows.append((name, va, vb, None, ""))
            continue
        delta = vb - va
        rel = delta / abs(va) if va else (0.0 if vb == 0 else float("inf"))
        worse = rel > tolerance if higher_is_worse else rel < -tolerance
        # rates near zero: a relative change of a tiny number is noise; need an absolute change too
        if key.endswith("_rate") and abs(delta) < 0.01:
            worse = False
        flag = "REGRESSION" if worse else ""
        if worse:
            regressions.append(name)
        rows.append((name, va, vb, rel, flag))
    out = out or run_b
    out.mkdir(parents=True, exist_ok=True)
    md = [f"### sseload compare: `{a['run_id']}` -> `{b['run_id']}` (tolerance {tolerance:.0%})", "",
          "| metric | A | B | change | |", "|---|---:|---:|---:|---|"]
    for name, va, vb, rel, flag in rows:
        change = "-" if rel is None else f"{rel:+.1%}"
        md.append(f"| {name} | {_num(va, 3)} | {_num(vb, 3)} | {change} | {flag} |")
    md_path, html_path = out / "compare.md", out / "compare.html"
    md_path.write_text("\n".join(md) + "\n")
    table = _table(["metric", "A", "B", "change", ""],
                   [[n, _num(va, 3), _num(vb, 3), "-" if r is None else f"{r:+.1%}", f]
                    for n, va, vb, r, f in rows])
    html_path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>sseload compare</title>"
                         f"<style>{CSS}</style></head><body><h1>{html.escape(a['run_id'])} &rarr; "
                         f"{html.escape(b['run_id'])}</h1>{table}</body></html>")
    return [html_path, md_path], regressions
