"""The master's role: it runs no users; it collects its workers' batches and writes the run's files.

A master has no run plan, no recorder and no early-stop guard (its workers have those); it has the
collector of the workers' signed batches and final reports (sseload.record.distributed), and what
each worker last reported live.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sseload.record.distributed import BATCH, DONE, REPORT, MasterCollector
from sseload.record.health import HealthMonitor, merge_summaries
from sseload.record.sink import ParquetSink
from sseload.run import room, runinfo
from sseload.run.plan import target_url
from sseload.run.planfile import PlanFile
from sseload.run.process import load_running
from sseload.run.roles import Role, WritesRun, run_key, utc_now
from sseload.run.scraper import scraper_for
from sseload.scenario.arrivals import TRACE_LEAD_S, TRACE_SHARE
from sseload.scenario.model import Scenario

log = logging.getLogger("sseload")


class MasterRole(Role, WritesRun):
    """The master: runs no users; collects the workers' batches and writes the run's files."""

    def __init__(self, environment, scenario: Scenario, host: str | None, launch: PlanFile | None) -> None:
        super().__init__(environment, scenario, host, launch)
        key = run_key("master")  # what a worker sends without its signature is refused (MessageGate)
        self.run_dir = self._open_run_dir()
        self.identity = self._identity(target_url(scenario, host), scenario.auth.method)
        self.scraper = scraper_for(scenario.server_metrics)
        self.worker_active: dict[str, int] = {}  # each worker's open streams, as last reported
        self.collector = MasterCollector(ParquetSink(self.run_dir, background=True), key)
        self.collector.on_disk_full = self._disk_full
        runner = environment.runner
        runner.register_message(BATCH, self.collector.on_batch)
        runner.register_message(DONE, self.collector.on_done)
        self._show_live()

        @environment.events.worker_report.add_listener
        def on_worker_report(client_id, data, **_kw):
            if "sseload" in data and self.collector.gate.admit(REPORT, client_id, data["sseload"]):
                self.live.merge_report(data["sseload"], self.worker_active, client_id)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def all_active(self) -> int:
        return sum(self.worker_active.values())

    def test_stopping(self) -> None:
        """Wait for every live worker's last batch before the master may quit.

        Locust's headless run-time limit calls quit() on the master, which tells workers to quit
        without a stop and exits half a second later: their open streams and last batch would be
        lost. So the master asks them to stop (their users finish within --stop-timeout) and waits
        for their final reports.
        """
        import gevent

        runner = self.environment.runner
        reports = self.collector.reports
        pending = {c.id for c in runner.clients.all if c.state != "missing"} - set(reports)
        for client_id in pending:
            runner.send_message("stop", None, client_id)
        deadline = time.monotonic() + self.environment.stop_timeout + 10
        try:
            while time.monotonic() < deadline:
                live = {c.id for c in runner.clients.all if c.state != "missing"}
                if not (live & pending) - set(reports):
                    return
                gevent.sleep(0.1)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, but still close the files
            log.error("sseload: interrupted again; not waiting for the workers' last batches")
            return
        log.error("sseload: some workers did not report within the stop timeout")

    def test_start(self) -> None:
        super().test_start()
        self._start_scraping()
        if self.scenario.load.trace:
            self._share_trace()

    def _share_trace(self) -> None:
        """[load] trace: each worker takes every n-th line, all from one origin a moment ahead, so the
        trace's times hold across workers (sseload.scenario.arrivals.TraceArrivals). Sent before Locust's
        spawn messages, which follow this hook on the same channel."""
        runner = self.environment.runner
        workers = sorted(c.id for c in runner.clients.ready + runner.clients.running + runner.clients.spawning)
        origin_ns = time.time_ns() + int(TRACE_LEAD_S * 1e9)
        for share, client_id in enumerate(workers):
            runner.send_message(TRACE_SHARE, {"origin_ns": origin_ns, "share": share, "of": len(workers)}, client_id)

    def test_stop(self) -> None:
        super().test_stop()
        self.collector.close()
        self._write_scrapes(stop=True)

    def quitting(self) -> None:
        self._stop_running_users()
        self.ended_at = self.ended_at or utc_now()
        self._write_run()
        room.release(self.run_dir)
        self._finish_plain_locust()

    def snapshot(self) -> Path:
        self._write_scrapes()
        if not load_running(self.environment):
            self._write_run()
            return self.run_dir
        self.collector.close()
        runinfo.write(self.run_dir, self._info(open_streams=f"{self.all_active()} streams were still open on the "
                                                            "workers"))
        return self.run_dir

    def _tally(self, snapshot: bool = False) -> runinfo.Tally:
        """What the master recorded, the lost workers' streams included; while the load runs (a
        snapshot) no worker has sent its final report yet: none is lost, and what arrived is what started.
        A stream that arrived is recorded, whether or not it is in the files: those that arrived once
        the disk was full are counted apart (``streams_on_disk``; run.json's not_written), not as
        streams never recorded."""
        collector, sink = self.collector, self.collector.sink
        lost = [] if snapshot else collector.lost_workers(self.environment)
        reports = list(collector.reports.values())
        health = [r["health"] for r in reports]
        received = collector.streams_received
        return runinfo.Tally(
            streams_started=received if snapshot else collector.streams_started(lost),
            streams_recorded=received, events_recorded=collector.events_received,
            streams_on_disk=None if snapshot else sink.streams_on_disk,
            outcomes=dict(sorted(collector.outcomes.items())), buffered_streams=sink.buffered_streams,
            health=merge_summaries(health), workers=len(reports) + len(lost), worker_health=health,
            lost_workers=lost, refused_messages=collector.gate.refused_messages,
            refused_reason=collector.gate.partial_reason() or "",
            worker_reasons=[reason for r in reports for reason in r.get("partial_reasons", [])])

    def _write_run(self) -> None:
        """run.json and health.parquet of the whole run: workers without a final report are lost."""
        self.collector.close()
        if self.collector.sink.disk_full is not None:  # run.json goes in the room its reserve held back
            room.release(self.run_dir)
        rows = [(i, *row) for i, r in enumerate(self.collector.reports.values()) for row in r.get("health_seconds", [])]
        self._written(self.run_dir / "health.parquet", lambda path: HealthMonitor.write_rows(rows, path))
        runinfo.write(self.run_dir, self._info())  # (after health.parquet: its disk may have filled there)

    def _disk_full(self, err: OSError) -> None:
        """The run's disk filled (a batch found it): said once, and the run stops there."""
        text = room.disk_full_text(self.run_dir, err)
        self.partial.add(runinfo.DISK_FULL, text)
        log.error(text)
        if load_running(self.environment):
            import gevent

            gevent.spawn(self.environment.runner.quit)
