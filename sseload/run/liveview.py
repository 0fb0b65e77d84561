"""What the aggregating process (standalone, or the master) shows while the load runs.

Every TICK_S it counts the open streams' events and adds a point to the live history
(sseload.views.live); with a progress line asked for (``sseload run``) it prints it; with
``--sseload-prometheus`` it serves the live metrics (sseload.views.prometheus); with a web UI it
adds the "SSE streams" tab (sseload.run.webui), given what the tab reads as callables, so the tab
knows nothing of roles or of run.json.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sseload.run import webui
from sseload.run.process import load_running
from sseload.run.verdict import BadInput
from sseload.views.live import TICK_S, LiveStats

log = logging.getLogger("sseload")


class LiveSource(Protocol):
    """What the live view reads of the process's role (as sseload.views.prometheus does)."""

    live: LiveStats
    run_id: str

    def all_active(self) -> int:
        """Streams open now, the workers' included as they last reported."""

    def open_here(self) -> int:
        """Streams this process itself has open (a master: none)."""


def start(environment, source: LiveSource, progress: bool, snapshot: Callable[[], Path]) -> None:
    """Start the tick, the Prometheus endpoint (if asked) and the web UI's tab (if there is a web UI).
    ``snapshot`` writes the run's files as they are now and returns the run's folder (the tab's report link)."""
    import gevent

    from sseload.views.console import Progress

    opts = environment.parsed_options
    line = Progress.to_stderr() if progress else None
    try:
        total_s = float(getattr(opts, "run_time", None) or 0) or None
    except (TypeError, ValueError):
        total_s = None
    if line is not None:
        environment.events.test_stop.add_listener(lambda **_kw: line.end())
    address = getattr(opts, "sseload_prometheus", None)
    if address:
        _serve_prometheus(source, address)
    if environment.web_ui is not None:
        from sseload.views import prometheus

        webui.install(environment.web_ui, live=source.live, active=source.all_active,
                      running=lambda: load_running(environment), snapshot=snapshot,
                      metrics=lambda: prometheus.exposition(source))

    def loop() -> None:
        while True:
            gevent.sleep(TICK_S)
            running = load_running(environment)
            if not running and not source.open_here():
                continue
            try:
                active = source.all_active()
                source.live.tick(active)
                if line is not None and running:
                    line.show(source.live, active, total_s)
            except Exception:  # the live view must never stop the run
                log.exception("sseload: the live numbers failed")

    gevent.spawn(loop)


def _serve_prometheus(source: LiveSource, address: str) -> None:
    from sseload.views import prometheus

    try:
        host, port = prometheus.serve(source, address)
    except ValueError as err:
        raise BadInput(str(err)) from None
    except OSError as err:
        raise BadInput(f"--prometheus {address}: cannot listen there ({err.strerror}); pick another port") from None
    log.info("sseload: live metrics for Prometheus at http://%s:%d/metrics", host, port)
