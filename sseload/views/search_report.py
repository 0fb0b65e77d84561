"""search.html: the capacity curve of a search, drawn from its search.json alone (so it can be drawn
again at any time): latency percentiles and goodput against load, throughput against latency, the
share meeting the SLO with its intervals, the capacity (the knee) marked on each, and the points'
table. The panels are sseload.views.chart_render's, drawn as one PNG embedded in the page.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from sseload.record.metrics import BY_KEY, GOODPUT, MARK_COLOURS, STREAMS_PER_S
from sseload.run import room
from sseload.views.chart_render import Chart, Mark, Panel, Series, png

SEARCH_HTML = "search.html"
KNEE = "#444444"


def _latency_key(points: list[dict]) -> str:
    """The latency the curve shows: TTFT where the streams are OpenAI-style, else TTFE."""
    return "ttft_ms" if any("ttft_ms" in p for p in points) else "ttfe_ms"


def _column(points: list[dict], key: str, stat: str | None = None) -> np.ndarray:
    values = [(p.get(key) or {}).get(stat) if stat else p.get(key) for p in points]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def charts(result: dict) -> list[Chart]:
    """Two charts of two panels: latency, throughput and goodput against load; throughput against latency
    and the share meeting the SLO; the capacity marked on each."""
    points = sorted((p for p in result["points"] if not p.get("superseded")), key=lambda p: p["load"])
    if not points:
        return []
    unit, load = result["unit"], np.array([p["load"] for p in points], dtype=float)
    key = _latency_key(points)
    label = BY_KEY[key].label
    knee = [] if result["capacity"] is None else [Mark(result["capacity"], f"capacity {result['capacity']:g}", KNEE)]
    latency = [Series(f"{label} {stat}", load, _column(points, key, stat), "points", colour)
               for stat, colour in MARK_COLOURS.items()]
    share = _column(points, "share_met")
    intervals = np.array([p["share_interval"] for p in points], dtype=float)
    target = np.full(load.size, result["search"]["share"])
    throughput = _column(points, "streams_per_s")
    p99 = _column(points, key, "p99")
    knee_latency = [Mark(float(p99[load == result["capacity"]][0]), "at capacity", KNEE)] \
        if knee and np.any(load == result["capacity"]) and not np.isnan(p99[load == result["capacity"]][0]) else []
    return [
        Chart("search-load", [
            Panel(f"{label} against load", f"load ({unit})", "ms", latency, knee),
            Panel("Throughput and goodput against load", f"load ({unit})", STREAMS_PER_S.unit,
                  [Series(STREAMS_PER_S.label, load, throughput, "points"),
                   Series(f"{GOODPUT.label} (meeting the SLO)", load, _column(points, "goodput"), "points",
                          "#2ca02c")],
                  knee)]),
        Chart("search-curve", [
            Panel(f"Throughput against {label} p99", f"{label} p99 (ms)", "streams/s",
                  [Series("points, by load", p99, throughput, "points")], knee_latency),
            Panel("Share meeting the SLO (95% intervals)", f"load ({unit})", "share",
                  [Series("share met", load, share, "points", "#2ca02c"),
                   Series("interval low", load, intervals[:, 0], "line", "#98df8a"),
                   Series("interval high", load, intervals[:, 1], "line", "#98df8a"),
                   Series(f"share asked ({result['search']['share']:g})", load, target, "line", "#d62728")],
                  knee)]),
    ]


def _table(result: dict) -> str:
    key = _latency_key(result["points"])
    label = BY_KEY[key].label
    heads = ["point", f"load ({result['unit']})", "length (s)", "streams", "met SLO", "95% interval",
             f"{label} p50 ms", f"{label} p99 ms", STREAMS_PER_S.unit, f"{GOODPUT.label} ({GOODPUT.unit})",
             "errors", "holds", "why not"]
    rows = []
    for p in result["points"]:
        pct = p.get(key) or {}
        cells = [p["run_id"], f"{p['load']:g}", str(p["length_s"]), str(p["streams"]), f"{p['share_met']:.1%}",
                 f"{p['share_interval'][0]:.1%}-{p['share_interval'][1]:.1%}",
                 "-" if pct.get("p50") is None else f"{pct['p50']:.1f}",
                 "-" if pct.get("p99") is None else f"{pct['p99']:.1f}",
                 f"{p['streams_per_s']:.2f}", f"{p['goodput']:.2f}", f"{p['error_rate']:.1%}",
                 ("yes" if p["holds"] else "no") + ("" if p["sure"] else " (not sure)")
                 + (" (run again, longer)" if p.get("superseded") else ""),
                 "; ".join(p["reasons"])]
        link = f"<a href='{html.escape(p['run_id'])}/'>{html.escape(cells[0])}</a>"
        rows.append("<tr><td>" + link + "</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells[1:]) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write(folder: Path, result: dict) -> Path:
    """search.html (and its charts' PNGs beside it) in the search's folder."""
    folder = Path(folder)
    figure = ""
    for drawn in charts(result):
        data = base64.b64encode(png(drawn, folder / f"{drawn.name}.png").read_bytes()).decode()
        figure += f"<img alt='{drawn.name}' src='data:image/png;base64,{data}'>"
    objectives = ", ".join(f"{k} <= {v:g}" for k, v in result["slo"].items() if v) or "none: ok streams"
    thresholds = ", ".join(f"{k} {v:g}" for k, v in result["thresholds"].items()) or "none"
    title = html.escape(f"sseload search {result['search_id']}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>"
            "body{font-family:sans-serif;margin:1.5em}img{max-width:100%}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style></head><body>"
            f"<h1>{title}</h1><p><b>{html.escape(answer_line(result))}</b></p>"
            f"<p>Over {html.escape(result['over'])}; a point holds when at least {result['search']['share']:.0%} of "
            f"its streams meet the SLO ({html.escape(objectives)}) and its run's verdict passes (thresholds: "
            f"{html.escape(thresholds)}). The capacity, the highest load that held, is marked on each chart: past "
            "it the SLO stops holding (the knee). How the search decides: docs/search.md.</p>"
            f"{figure}{_table(result)}</body></html>")
    path = folder / SEARCH_HTML
    room.write_whole(path, page)  # (a full disk: sseload.run.room.DiskFull, its sentence said by the search)
    return path


def amount(load: float | None, unit: str) -> str:
    return "-" if load is None else f"{load:g} {unit}"


def answer_line(result: dict) -> str:
    """The answer, as the console ends with it: the capacity, its interval, why the search stopped, the gate."""
    unit, (low, high) = result["unit"], result["interval"]
    if result["capacity"] is None:
        found = f"capacity: below {amount(result['search']['min'], unit)} (not even the least load held)"
    else:
        span = (f"at least {amount(low, unit)}" if low is not None else "no point held surely") + \
            (f", at most {amount(high, unit)}" if high is not None else ", no point above it failed surely")
        found = f"capacity: {amount(result['capacity'], unit)} ({span})"
    gate = ""
    if result["require"] and result["stopped"] != "stopped":  # (a search cut short exits as what cut it)
        gate = f"; require {amount(result['require'], unit)}: " + ("met" if result["passed"] else "NOT met")
    return f"{found}; stopped: {result['stopped_text']}{gate}"
