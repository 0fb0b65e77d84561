"""The "SSE streams" tab in Locust's web UI: live TTFE and gap percentiles, active streams,
events/s, outcomes and cutoffs (LLM streams: TTFT, output tokens/s and TPOT first), live
time-series charts, and a link to the run's report.

The numbers are :class:`sseload.views.live.LiveStats`'s. Built on Locust's own extension points:
``extended_tabs``/``extended_tables`` template arguments and an ``extended_stats`` entry added
to ``/stats/requests`` (the table), and, with workers, ``report_to_master``/``worker_report``.
Locust's tables show text only, so a small script (``static/tab.js``, added to Locust's page)
draws the charts (ECharts, shipped in the package: no network needed) from ``/sseload/live.json``
and puts the report link under the table.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from sseload.protocol.outcomes import Outcome
from sseload.record.metrics import (
    ACTIVE_STREAMS,
    EVENTS_PER_S,
    GAP,
    MARK_COLOURS,
    OUTPUT_TOKENS_PER_S,
    TPOT,
    TTFE,
    TTFT,
    Metric,
)
from sseload.views.live import WINDOW_S, LiveStats, LogHistogram

TAB = "sseload"
STATIC = Path(__file__).parents[1] / "static"
REPORT_HREF = "./sseload/report"
#: The tab's own rows (live counts, not summary metrics: those take their labels from sseload.record.metrics).
FINISHED = "streams finished"
CUTOFFS = "cutoffs (gateway limit)"
REPORT_TIMEOUT_S = 300
#: Where the web UI listens unless --web-host says otherwise (sseload.run.hooks): it has no
#: authentication, and anyone who reaches it can start load and read the run's report.
DEFAULT_WEB_HOST = "127.0.0.1"

log = logging.getLogger("sseload")


def exposure_warning(web_host: str, port: int) -> str:
    """What to tell the user when the web UI listens beyond this machine ('' when it does not)."""
    host = (web_host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return ""
    except ValueError:  # '', '*' or a host name: all interfaces, or wherever the name points
        pass
    where = "every interface" if host in ("", "*", "0.0.0.0", "::") else host
    return (f"the web UI listens on {where}, port {port}, with no authentication: anyone who reaches it can start "
            f"load (POST /swarm) and read the run's report. Keep that port on a private network or behind a reverse "
            f"proxy that authenticates (with TLS); or leave out --web-host (it then listens on {DEFAULT_WEB_HOST} "
            f"only) and reach it through an SSH tunnel: ssh -L {port}:127.0.0.1:{port} THIS_MACHINE")


def _pct(h: LogHistogram, ps: tuple) -> str:
    """Percentiles as the tab shows them: ``12.3 / 45.6 / 78.9``; dashes without samples."""
    values = [h.percentile(p) for p in ps]
    return " / ".join("-" if v is None else f"{v:.1f}" for v in values)


def _latency_row(metric: Metric, h: LogHistogram, span: str, ps=(50, 95, 99)) -> tuple[str, str]:
    names = " / ".join("max" if p == 100 else f"p{p}" for p in ps)
    return f"{metric.label} {names} ({metric.unit}, {span})", _pct(h, ps)


def rows(live: LiveStats, active: int, whole_run: bool) -> list[dict]:
    """The tab's table: the last WINDOW_S while the load runs, the whole run once it stopped; LLM
    streams' TTFT, output tokens/s (as their chunks came) and TPOT lead."""
    live.count_open()  # what the open streams got since the last tick: the numbers are the moment's
    if whole_run:
        counts, seconds, span = live.run, max(live.elapsed_s(), 1e-9), "whole run"
    else:
        counts, seconds = live.window()
        span = f"last {WINDOW_S:g} s"
    out = [(ACTIVE_STREAMS, str(active))]
    if live.llm:
        out += [_latency_row(TTFT, counts.hist[TTFT.key], span),
                (f"{OUTPUT_TOKENS_PER_S.label} ({OUTPUT_TOKENS_PER_S.unit}, {span})",
                 OUTPUT_TOKENS_PER_S.format(counts.tokens / seconds)),
                _latency_row(TPOT, counts.hist[TPOT.key], span)]
    out += [
        _latency_row(TTFE, counts.hist[TTFE.key], span),
        _latency_row(GAP, counts.hist[GAP.key], span, (50, 99, 100)),
        (f"{EVENTS_PER_S.unit} ({span})", EVENTS_PER_S.format(counts.events / seconds)),
        (FINISHED, str(live.streams_finished)),
        (CUTOFFS, str(live.cutoffs)),
    ]
    total = live.streams_finished
    out += [(f"outcome: {name}", f"{count} ({count / total:.1%})") for name, count in sorted(live.run.outcomes.items())]
    return [{"metric": k, "value": v} for k, v in out]


def chart_specs() -> list[dict]:
    """The tab's live charts (static/tab.js draws them from sseload.views.live's history points):
    titles and units from the metric table, outcome colours from the outcome table. The token
    charts come first, shown once the run has LLM streams."""
    def pct(metric: Metric, ps: tuple) -> list:
        return [[f"{metric.key}_p{p}", f"p{p}", MARK_COLOURS[f"p{p}"]] for p in ps]

    return [
        {"id": TTFT.key, "title": f"{TTFT.label} percentiles ({TTFT.unit})", "unit": TTFT.unit, "tokens": True,
         "series": pct(TTFT, (50, 95, 99))},
        {"id": "tokens", "title": OUTPUT_TOKENS_PER_S.label.capitalize() + f" ({OUTPUT_TOKENS_PER_S.unit})",
         "unit": OUTPUT_TOKENS_PER_S.unit, "tokens": True,
         "series": [["tokens_per_s", OUTPUT_TOKENS_PER_S.unit, "#1f77b4"]]},
        {"id": TTFE.key, "title": f"{TTFE.label} percentiles ({TTFE.unit})", "unit": TTFE.unit,
         "series": pct(TTFE, (50, 95, 99))},
        {"id": GAP.key, "title": f"{GAP.label.capitalize()} between events, percentiles ({GAP.unit})", "unit": GAP.unit,
         "series": pct(GAP, (50, 99))},
        {"id": "rate", "title": f"{EVENTS_PER_S.unit} and streams ended/s", "unit": EVENTS_PER_S.unit,
         "right": "streams/s",
         "series": [["events_per_s", EVENTS_PER_S.unit, "#1f77b4"], ["streams_per_s", "streams/s", "#9467bd", 1]]},
        {"id": "active", "title": ACTIVE_STREAMS.capitalize(), "unit": "",
         "series": [["active", ACTIVE_STREAMS, "#17becf"]]},
        {"id": "outcomes", "title": "Stream outcomes (streams/s, by end)", "unit": "streams/s", "outcomes": True,
         "colours": {o.value: o.color for o in Outcome}},
    ]


def _inject(page: str) -> str:
    """Locust's page with the tab's script (and ECharts) added."""
    tags = ('<script src="./sseload/static/echarts.common.min.js"></script>'
            '<script src="./sseload/static/tab.js"></script>')
    return page.replace("</body>", tags + "</body>", 1)


def install(web_ui, live: LiveStats, active: Callable[[], int], running: Callable[[], bool],
            snapshot: Callable[[], Path], metrics: Callable[[], bytes]) -> None:
    """Add the tab to a Locust web UI (of the standalone process or the master). What the tab shows
    comes in as callables (sseload.run.liveview gives them): ``active`` the open streams, ``running``
    whether load runs, ``snapshot`` writes the run's files as they are now and returns the run's
    folder, ``metrics`` the Prometheus exposition."""
    from flask import Response, abort, jsonify, request, send_file, send_from_directory

    warning = exposure_warning(getattr(web_ui, "host", ""), getattr(web_ui, "port", 0))
    if warning:
        log.warning("sseload: %s", warning)
    web_ui.template_args["extended_tabs"] = [{"title": "SSE streams", "key": TAB}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB, "structure": [{"key": "metric", "title": "Metric"}, {"key": "value", "title": "Value"}]}
    ]
    web_ui.template_args["extended_csv_files"] = [{"href": REPORT_HREF, "title": "sseload report (HTML)"}]

    @web_ui.app.after_request
    def add_sse_stats(response):
        if response.status_code != 200:
            return response
        if request.path == "/" and response.mimetype == "text/html":
            response.direct_passthrough = False
            response.set_data(_inject(response.get_data(as_text=True)))
            return response
        if request.path != "/stats/requests":
            return response
        doc = response.get_json(silent=True)
        if doc is None:
            return response
        doc["extended_stats"] = [{"key": TAB, "data": rows(live, active(), not running())}]
        response.set_data(json.dumps(doc))
        return response

    @web_ui.app.route("/sseload/live.json")
    def sseload_live():
        """The tab's charts: the run's history (a point every TICK_S) and whether it still runs."""
        return jsonify({"history": live.history, "running": running(), "charts": chart_specs(),
                        "report": REPORT_HREF, "tokens": live.llm})

    @web_ui.app.route("/sseload/metrics")
    def sseload_metrics():
        """The live metrics in Prometheus's format (as --prometheus serves them)."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics(), mimetype=CONTENT_TYPE_LATEST)

    @web_ui.app.route("/sseload/static/<path:name>")
    def sseload_static(name):
        if name not in ("echarts.common.min.js", "tab.js"):
            abort(404)
        return send_from_directory(STATIC, name, max_age=3600)

    one_report = OneAtATime()

    @web_ui.app.route("/sseload/report")
    def sseload_report():
        """Write the run's files as they are now and show its report.

        The report is drawn by a child process (``sseload report``): pandas and matplotlib would
        hold this process's event loop for seconds, and with it every open stream's reads. One is
        drawn at a time: a request that comes while one is drawn waits for it and gets it."""
        def snapshot_and_report() -> tuple[Path, str]:
            return write_report_elsewhere(snapshot())

        paths, error = one_report.run(snapshot_and_report)
        if error:
            return Response(f"sseload could not write the report for {paths.parent}:\n{error}", status=500,
                            mimetype="text/plain")
        return send_file(paths.resolve())


class OneAtATime:
    """Runs one call at a time in a gevent process; whoever asks while a call is under way waits
    for that call and gets its result (or its exception) instead of starting another."""

    def __init__(self) -> None:
        self._running = None  # the call under way: a gevent AsyncResult

    def run(self, call):
        from gevent.event import AsyncResult

        if self._running is not None:
            return self._running.get()
        result = self._running = AsyncResult()
        try:
            value = call()
        except BaseException as err:
            result.set_exception(err)
            raise
        else:
            result.set(value)
            return value
        finally:
            self._running = None


def write_report_elsewhere(run_dir: Path) -> tuple[Path, str]:
    """``sseload report RUN_DIR`` in a child process, waited for cooperatively (gevent's
    subprocess under Locust): (report.html, "") or (path, what went wrong)."""
    import gevent.subprocess as sp

    try:
        done = sp.run([sys.executable, "-m", "sseload", "report", str(run_dir)], capture_output=True, text=True,
                      timeout=REPORT_TIMEOUT_S)
    except sp.TimeoutExpired:
        return run_dir / "report.html", f"the report took over {REPORT_TIMEOUT_S} s"
    if done.returncode != 0:
        return run_dir / "report.html", (done.stderr or done.stdout).strip()[-2000:]
    return run_dir / "report.html", ""

