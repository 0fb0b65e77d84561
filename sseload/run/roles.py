"""The process roles, one class each as Locust's runners are: standalone and worker here, the
master in sseload.run.master.

Each role owns its state and its part of the run's lifecycle, and each Locust hook calls one
method of it (sseload.run.hooks). A role that runs users (:class:`LocalRole`, :class:`WorkerRole`)
compiles the run plan and records streams; a role that writes the run's files (:class:`LocalRole`
and the master) makes or adopts the run's folder, shows the live view and composes run.json
through sseload.run.runinfo.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from sseload.protocol.dialects import facts as dialect_facts
from sseload.record import redact
from sseload.record.distributed import DONE, REPORT, WorkerSink
from sseload.record.health import HealthMonitor
from sseload.record.recorder import Recorder
from sseload.record.records import StreamRecord
from sseload.record.runkey import RunKey, RunKeyError
from sseload.record.server_metrics import FILE_NAME as SERVER_METRICS_FILE
from sseload.record.sink import ParquetSink
from sseload.run import liveview, room, runinfo
from sseload.run import verdict as run_verdict
from sseload.run.guard import EarlyStop
from sseload.run.plan import RunPlan
from sseload.run.planfile import PlanFile
from sseload.run.process import load_running, memoise_default_args, prepare_users, quiet_collector
from sseload.run.scraper import Scraper, scraper_for
from sseload.run.verdict import BadInput
from sseload.scenario.arrivals import TRACE_LEAD_S, TRACE_SHARE, Arrivals, TraceArrivals
from sseload.scenario.model import Scenario, dialect_of
from sseload.transport.tuning import Tuning
from sseload.views.live import LiveStats

log = logging.getLogger("sseload")


def utc_now() -> datetime:
    return datetime.now(UTC)


def run_key(role: str) -> RunKey:
    """The run key a master and its workers share (SSELOAD_RUN_KEY), or the sentence on how to set it."""
    try:
        return RunKey.from_env(role)
    except RunKeyError as err:
        raise BadInput(str(err)) from None


class Role:
    """One process's part of the run; Locust's hooks call its methods (the constructor is ``init``).

    ``launch`` is the run-plan file of ``sseload run`` (sseload.run.planfile), None under plain
    ``locust -f``; ``host`` the host the streams go to (sseload.scenario.load.select)."""

    LIVE_REPORTS = False  # whether the live numbers are reported to a master (a worker's are)

    def __init__(self, environment, scenario: Scenario, host: str | None, launch: PlanFile | None) -> None:
        self.environment = environment
        self.scenario = scenario
        self.host = host
        self.launch = launch
        self.tuning = Tuning.from_env()  # read once; every piece gets it from here
        self.live = LiveStats(reports=self.LIVE_REPORTS)  # the web UI, the progress line, Prometheus
        self.partial = runinfo.PartialReasons()  # what happened during the run (a signal, an early stop)
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None

    def all_active(self) -> int:
        """Streams open now, this process's and (a master's) its workers' as they last reported."""
        return 0

    def open_here(self) -> int:
        """Streams this process itself has open."""
        return 0

    def test_start(self) -> None:
        """Load starts."""
        self.started_at, self.ended_at = utc_now(), None
        self.live.reset()

    def test_stopping(self) -> None:
        """Load is about to stop."""

    def test_stop(self) -> None:
        """Users have stopped: the live history's last point has the streams the stop ended."""
        self.live.tick(self.all_active())
        self.live.stop()

    def quitting(self) -> None:
        """The process is about to exit: everything recorded must be written now."""

    def _stop_running_users(self) -> None:
        """On SIGTERM/SIGINT Locust fires `quitting` before it stops the users: stop them first, so
        streams still open finish (within --stop-timeout) and are recorded, not dropped."""
        runner = self.environment.runner
        if runner is not None and runner.state in ("spawning", "running"):
            self.partial.add(runinfo.SIGNAL, "stopped by a signal before the run time ended")
            runner.stop()


class RunsUsers(Role):
    """A process that runs users: it compiles the run plan and records every stream its users end."""

    recorder: Recorder  # each subclass's own: its sink writes the files (standalone) or ships batches (worker)

    def __init__(self, environment, scenario: Scenario, host: str | None, launch: PlanFile | None) -> None:
        super().__init__(environment, scenario, host, launch)
        opts = environment.parsed_options
        self.plan = RunPlan(scenario, host, insecure=bool(getattr(opts, "insecure", False)))
        self.health = HealthMonitor(tuning=self.tuning)
        self.guard = EarlyStop(scenario.auth, scenario.load, self._stop_early)
        self.streams_started = 0
        self.active_streams = 0
        self._arrivals: Arrivals | None = None
        self._trace_arrivals: TraceArrivals | None = None
        self.trace_share: dict | None = None  # a worker's share of a trace, as the master sent it

    def all_active(self) -> int:
        return self.active_streams

    def open_here(self) -> int:
        return self.active_streams

    def test_start(self) -> None:
        super().test_start()
        quiet_collector()
        self.recorder.start()
        self.health.start(lambda: self.active_streams)

    def arrivals(self) -> Arrivals:
        """The open model's one schedule in this process, at this process's share of the rate."""
        if self._arrivals is None:
            load = self.scenario.load
            opts = self.environment.parsed_options
            total = getattr(opts, "num_users", None) or load.users
            here = getattr(self.environment.runner, "target_user_count", 0) or total
            run_s = getattr(opts, "run_time", None) or (self.launch.run_s if self.launch else None)
            self._arrivals = Arrivals(load.arrival, load.rate_per_s * min(1.0, here / max(1, total)),
                                      float(run_s) if run_s else None)
        return self._arrivals

    def trace_arrivals(self) -> TraceArrivals:
        """[load] trace: this process's share of the trace's lines, on the run's one origin."""
        if self._trace_arrivals is None:
            # alone, the trace starts a moment after the load (its users spawned), as a master starts it for workers
            load = self.scenario.load
            share = self.trace_share or {"share": 0, "of": 1, "origin_ns": time.time_ns() + int(TRACE_LEAD_S * 1e9)}
            opts = self.environment.parsed_options
            run_s = getattr(opts, "run_time", None) or (self.launch.run_s if self.launch else None)
            self._trace_arrivals = TraceArrivals(self.plan.trace.times_ms, load.speed, float(run_s) if run_s else None,
                                                 share["share"], share["of"], share["origin_ns"])
        return self._trace_arrivals

    def after_stream(self, record: StreamRecord, sent: bool = True) -> None:
        """A stream ended and is recorded (the live view has counted it, its tokens as they came):
        the early-stop guard sees its outcome."""
        self.guard.after_stream(record, sent)

    def _stop_early(self, code: str, text: str) -> None:
        """The guard's stop: the reason goes into run.json (where the verdict reads it), then the run quits."""
        self.partial.add(code, text)
        log.error(text)
        environment = self.environment
        environment.process_exit_code = run_verdict.BAD_INPUT
        if environment.runner is not None:
            import gevent

            gevent.spawn(environment.runner.quit)


class WritesRun:
    """A role that writes the run's files (standalone or master): its folder, run.json, the end."""

    environment: object
    scenario: Scenario
    launch: PlanFile | None
    run_dir: Path  # set by each subclass's constructor, from _open_run_dir
    identity: runinfo.Identity
    scraper: Scraper | None = None  # [server_metrics] (sseload.run.scraper): once per run, never in a worker

    def _start_scraping(self) -> None:
        if self.scraper is not None:
            self.scraper.start()

    def _write_scrapes(self, stop: bool = False) -> None:
        """server_metrics.parquet, every scrape kept so far in it; ``stop``: the load stopped, no more scrapes."""
        if self.scraper is not None:
            if stop:
                self.scraper.stop()
            if self.scraper.scrapes:  # (none kept: no file)
                self._written(self.run_dir / SERVER_METRICS_FILE, self.scraper.samples.write_to)

    def _written(self, path: Path, write: Callable[[Path], None]) -> None:
        """A file beside the streams, whole (sseload.run.room); a full disk's is disk_full (exit 2), said once."""
        said = room.written(path, write, lambda text: self.partial.add(runinfo.DISK_FULL, text))
        if said:
            log.error("sseload: %s", said)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def _open_run_dir(self) -> Path:
        """The run's folder: adopted from `sseload run`, which made it (the run-plan file), or made
        here under plain `locust -f`; both through sseload.run.runinfo, the one place that decides."""
        try:
            if self.launch is not None:
                path = runinfo.adopt_run_dir(Path(self.launch.results_dir), self.launch.run_id)
            else:
                opts = self.environment.parsed_options
                path = runinfo.create_run_dir(Path(getattr(opts, "results_dir", None) or "results"),
                                              getattr(opts, "run_id", None), self.scenario.name)
            return room.hold(path)  # for run.json, should the disk fill during the run
        except (runinfo.RunDirError, room.NoRoom) as err:
            raise BadInput(str(err)) from None

    def _identity(self, url: str, auth_method: str) -> runinfo.Identity:
        import locust

        opts = self.environment.parsed_options
        return runinfo.Identity(
            run_id=self.run_dir.name, target_url=redact.mask_url(url), auth_method=auth_method,
            insecure_tls=bool(getattr(opts, "insecure", False)),
            embedded_target=bool(self.launch and self.launch.embedded_target),
            scenario=redact.scenario_to_write(asdict(self.scenario)), tuning=self.tuning.to_dict(),
            locust_version=locust.__version__, machine=runinfo.this_machine(), python=platform.python_version(),
            dialect=dialect_facts(dialect_of(self.scenario, url)))

    def _show_live(self) -> None:
        liveview.start(self.environment, self, bool(self.launch and self.launch.progress), self.snapshot)

    def _info(self, open_streams: str = "") -> dict:
        opts = self.environment.parsed_options
        load = {"users": getattr(opts, "num_users", None), "spawn_rate": getattr(opts, "spawn_rate", None),
                "run_time": getattr(opts, "run_time", None)}
        tally = self._tally(snapshot=bool(open_streams))
        tally.server_metrics = self.scraper.info() if self.scraper is not None else None
        return runinfo.compose(self.identity, load, self.started_at, self.ended_at, tally, self.partial, open_streams)

    def _finish_plain_locust(self) -> None:
        """Plain `locust -f --headless` (not `sseload run`, which does this once Locust is gone): the
        same summary, verdict and report; a failed verdict is the exit code, else Locust's own (1 on
        any failure). With a web UI the report is a click away: its link writes it."""
        environment = self.environment
        if self.launch is not None or not getattr(environment.parsed_options, "headless", False):
            return
        from sseload.views import report

        try:
            code = report.finish(self.run_dir, self.scenario, write_report=True)
        except Exception as err:  # the files are written: say why the report is not, do not lose the run
            log.error("sseload: the run is in %s but its report could not be written: %s", self.run_dir, err)
            code = run_verdict.NOTHING_RECORDED  # (the run cannot be read back)
        if code:
            environment.process_exit_code = max(code, environment.process_exit_code or 0)


class LocalRole(RunsUsers, WritesRun):
    """A standalone process: runs the users and writes the run's files itself."""

    def __init__(self, environment, scenario: Scenario, host: str | None, launch: PlanFile | None) -> None:
        super().__init__(environment, scenario, host, launch)
        self.run_dir = self._open_run_dir()
        self.recorder = Recorder(ParquetSink(self.run_dir, self.plan.send_time_ns))
        self.recorder.on_disk_full = self._disk_full
        self.identity = self._identity(self.plan.url, self.plan.auth.method)
        self.scraper = scraper_for(scenario.server_metrics)
        self._show_live()
        prepare_users(environment, scenario.load.wait_s)

    def test_start(self) -> None:
        super().test_start()
        self._start_scraping()

    def test_stop(self) -> None:
        """Users have stopped: close the files so the run can be read (and reported)."""
        super().test_stop()
        self.ended_at = utc_now()
        self.recorder.close_sink()
        self._write_scrapes(stop=True)

    def quitting(self) -> None:
        self._stop_running_users()
        self.ended_at = self.ended_at or utc_now()
        self.health.stop()
        self.recorder.close()
        info = self._write_run()
        room.release(self.run_dir)
        log.info("sseload: %d streams, %d events recorded in %s", info["streams_recorded"],
                 info["events_recorded"], self.run_dir)
        self._finish_plain_locust()

    def snapshot(self) -> Path:
        """The run's files as they are now (the web UI's report link). While the load runs this is a
        snapshot: its open streams are not in it, and run.json says so."""
        self.recorder.close_sink()
        self._write_scrapes()
        if not load_running(self.environment):  # a stopped run keeps when its load ended
            self._write_run()
            return self.run_dir
        self._written(self.run_dir / "health.parquet", self.health.write)
        runinfo.write(self.run_dir, self._info(open_streams=f"{self.active_streams} streams were still open"))
        return self.run_dir

    def _tally(self, snapshot: bool = False) -> runinfo.Tally:
        rec, sink = self.recorder, self.recorder.sink
        return runinfo.Tally(
            streams_started=self.streams_started, streams_recorded=rec.streams_recorded,
            events_recorded=rec.events_recorded, outcomes=dict(rec.outcomes), buffered_streams=sink.buffered_streams,
            health=self.health.summary(), streams_on_disk=sink.streams_on_disk,
            write_error=None if rec.write_error is None else str(rec.write_error))

    def _write_run(self) -> dict:
        """health.parquet and run.json (once the disk is full, in the room its reserve held back)."""
        if self.recorder.sink.disk_full is not None:
            room.release(self.run_dir)
        self._written(self.run_dir / "health.parquet", self.health.write)
        info = self._info()
        runinfo.write(self.run_dir, info)
        return info

    def _disk_full(self, err: OSError) -> None:
        """The recorder found the run's disk full: said once, and the run stops there."""
        text = room.disk_full_text(self.run_dir, err)
        if load_running(self.environment):
            self._stop_early(runinfo.DISK_FULL, text)
        else:  # (filled by the last writes, once the load stopped)
            self.partial.add(runinfo.DISK_FULL, text)
            log.error(text)


class WorkerRole(RunsUsers):
    """A worker: runs users and ships every batch and its final totals to the master."""

    LIVE_REPORTS = True

    def __init__(self, environment, scenario: Scenario, host: str | None, launch: PlanFile | None) -> None:
        super().__init__(environment, scenario, host, launch)
        self.key = run_key("worker")  # every message to the master is signed with it (sseload.record.runkey)
        self.recorder = Recorder(WorkerSink(environment.runner, self.key, self.plan.send_time_ns))

        @environment.events.report_to_master.add_listener
        def on_report(client_id, data, **_kw):  # what it counted live since the last report (sseload.views.live)
            data["sseload"] = self.key.sign(REPORT, client_id, self.live.take_report(self.active_streams))

        if scenario.load.trace:  # the master says which lines are this worker's, and when the trace starts
            environment.runner.register_message(TRACE_SHARE, self._on_trace_share)
        memoise_default_args()
        prepare_users(environment, scenario.load.wait_s)

    def _on_trace_share(self, environment, msg, **_kw) -> None:
        self.trace_share = dict(msg.data)
        self._trace_arrivals = None  # a new run of the trace (the web UI started it again)

    def trace_arrivals(self) -> TraceArrivals:
        if self.trace_share is None:  # no share from the master: sending every line would double the trace
            if self._trace_arrivals is None:
                log.error("sseload worker: the master sent no share of the trace; this worker sends none of it")
                self._trace_arrivals = TraceArrivals([], 1.0)
            return self._trace_arrivals
        return super().trace_arrivals()

    def test_stop(self) -> None:
        """Users have stopped: ship the last batch and the totals (before `client_stopped`)."""
        super().test_stop()
        self.recorder.flush(wait=True)
        self.recorder.drain()
        runner = self.environment.runner
        runner.send_message(DONE, self.key.sign(DONE, runner.client_id, self.report()))

    def quitting(self) -> None:
        self._stop_running_users()
        self.ended_at = utc_now()
        self.health.stop()
        try:
            self.recorder.close()
        except Exception as err:  # the master may be gone already
            log.warning("sseload worker: final flush failed: %s", err)

    def report(self) -> dict:
        """What a worker tells the master when its users have stopped."""
        rec = self.recorder
        return {
            "streams_started": self.streams_started,
            "streams_recorded": rec.streams_recorded,
            "events_recorded": rec.events_recorded,
            "outcomes": dict(rec.outcomes),
            "health": self.health.summary(),
            "health_seconds": self.health.seconds,
            "partial_reasons": self.partial.reasons,
        }
