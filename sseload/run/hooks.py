"""Locust wiring: command-line options, the per-process run context, and the run's lifecycle.

Importing this module (``sseload.run.user`` does) registers listeners on Locust's events, so any
locustfile that uses :class:`sseload.run.user.SSEUser` records streams, whether it is started by
``sseload run`` or by ``locust -f`` directly. Each hook hands over to the process's role
(:class:`LocalRole`, :class:`WorkerRole` or :class:`MasterRole`), which owns that role's part
of the lifecycle; ``run.json`` is written through sseload.run.runinfo only.
"""

from __future__ import annotations

import argparse
import functools
import gc
import inspect
import logging
import os
import platform
import socket
import ssl
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import locust
from locust import events

import sseload
from sseload.auth.schemes import Authenticator, from_scenario
from sseload.protocol.llm import load_tokenizer
from sseload.protocol.outcomes import AUTHENTICATED, SUCCEEDED, Outcome
from sseload.protocol.response import SEND_TIME_UNITS_NS
from sseload.protocol.sse import OUTPUT_KINDS
from sseload.record import redact
from sseload.record.distributed import BATCH, DONE, REPORT, MasterCollector, WorkerSink
from sseload.record.health import HealthMonitor, merge_summaries
from sseload.record.recorder import ParquetSink, Recorder, warm_up
from sseload.record.records import StreamRecord, tpot
from sseload.record.runkey import RunKey, RunKeyError
from sseload.run import runinfo, webui
from sseload.run.runinfo import PartialReasons
from sseload.scenario import bodies as body_mod
from sseload.scenario.arrivals import Arrivals
from sseload.scenario.model import (
    Scenario,
    ScenarioError,
    add_request_flags,
    apply_request_flags,
    default_scenario,
    expand_env,
    for_host,
    is_openai,
    request_headers,
    request_url,
)
from sseload.scenario.model import load as load_scenario
from sseload.transport.client import Endpoint, PreparedRequest, StreamRules
from sseload.transport.tuning import Tuning
from sseload.views.live import TICK_S, LiveStats

log = logging.getLogger("sseload")
WORKER_BODY_STRIDE = 7919  # a prime: workers' starting places in a list of bodies, spread

CONTEXT_ATTR = "sseload_context"


class SetupError(Exception):
    """Something the user must fix before load can start; the message says what."""


class RunContext:
    """Everything one Locust process needs to run and record streams, built once."""

    def __init__(self, scenario: Scenario, host: str | None, results_dir: Path, run_id: str | None,
                 insecure: bool = False, role: str = "local") -> None:
        self.scenario = scenario
        self.role = role  # "local" (standalone), "worker" or "master"; its lifecycle: ROLES[role]
        self.results_dir = results_dir
        self._asked_run_id = run_id  # --run-id, or None for a default one
        self.run_id = run_id or ""  # a default id is known once prepare_run_dir has made its folder
        self.run_dir: Path | None = None  # set by prepare_run_dir (workers write no folder)
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.partial = PartialReasons()
        self.recorder: Recorder | None = None
        self.tuning = Tuning.from_env()  # read once; every piece gets it from here
        self.send_time_ns = SEND_TIME_UNITS_NS[scenario.stream.send_time_unit]
        self.health = HealthMonitor(tuning=self.tuning)
        self.streams_started = 0
        self.active_streams = 0
        self.insecure = insecure
        self.collector = None  # the master's MasterCollector
        self.lifecycle: Role | None = None  # set by the init hook: ROLES[role]()
        self._arrivals: Arrivals | None = None
        self.live = LiveStats(reports=role == "worker")  # the live numbers (web UI, progress line, Prometheus)
        self.live_enabled = False
        self.worker_active: dict[str, int] = {}  # the master's: each worker's open streams, as last reported
        self.stopped_early = False  # the run stopped itself (a failure storm, the setup's fault)
        if role == "master":  # the master runs no users: it needs no target, secrets or bodies
            self.url = redact.split_userinfo(host or scenario.request.url)[0]
            redact.remember_request(scenario.request.headers, host or scenario.request.url,
                                    scenario.request.secret_headers)
            self.auth = Authenticator()
            self.auth.method = scenario.auth.method
            return
        req = scenario.request
        if host:
            url = request_url(req, host)
        elif req.url:
            try:
                url = expand_env(req.url, "[request] url")
                if scenario.auth.iam_url:
                    scenario.auth.iam_url = expand_env(scenario.auth.iam_url, "[auth] iam_url")
            except ScenarioError as err:
                raise SetupError(str(err)) from None
        else:
            raise SetupError(
                "no target: give -H/--host (e.g. -H https://gateway.example.com) or set [request] url "
                "in the scenario; `sseload run` with no host starts the reference target for you"
            )
        url, basic = redact.split_userinfo(url)  # userinfo is sent as Basic auth, never kept in the URL
        try:
            req.headers = request_headers(req, basic)
        except ScenarioError as err:
            raise SetupError(str(err)) from None
        redact.remember_request(req.headers, url, req.secret_headers)
        self.url = url
        try:
            self.endpoint = Endpoint.resolve(url)
        except (ValueError, ConnectionError) as err:
            raise SetupError(str(err)) from None
        try:
            self.auth: Authenticator = from_scenario(scenario.auth, url)
            base_dir = Path(scenario.source).parent if scenario.source else None
            skip_over = scenario.gateway.max_body_bytes if scenario.body.over_limit == "skip" else None
            self.bodies = body_mod.bodies(scenario.body, base_dir, req.method, skip_over)
            self.conversations = body_mod.conversations(scenario.body, base_dir) if scenario.body.multi_turn else []
        except ScenarioError as err:
            raise SetupError(str(err)) from None
        for secret in self.auth.secrets():
            redact.remember(secret)
        redact.remember_request({}, scenario.auth.iam_url)
        self.requests = [PreparedRequest.build(req.method, url, req.headers, b"", b) if isinstance(b, int)
                         else PreparedRequest.build(req.method, url, req.headers, b) for b in self.bodies]
        st = scenario.stream
        self.rules = StreamRules(
            completion=st.completion,
            max_event_bytes=st.max_event_bytes,
            connect_timeout_s=st.connect_timeout_s,
            read_timeout_s=st.read_timeout_s,
            deadline_s=scenario.gateway.limit_s + st.grace_s,
            limit_s=scenario.gateway.limit_s,
            truth=st.truth,
            send_time_key=st.send_time_key,
            max_redirects=st.max_redirects,
            openai=is_openai(scenario, url),
            keep_output=bool(st.tokenizer) or scenario.body.multi_turn,
            output_kinds=sum(OUTPUT_KINDS[kind] for kind in set(st.output)),
            tokenizer=self._tokenizer(st.tokenizer, base_dir),
            new_connection=st.connection == "new",
            tls_resume=st.tls_resume,
        )
        self.tls = self._tls_context(st.tls_verify and not insecure, st.ca_bundle) \
            if self.endpoint.scheme == "https" else None
        self.auth_failures = 0
        self.auth_ok = False
        self.succeeded = False  # a stream ended ok: failures from now on are the service's, not the setup's
        self.first_failure: tuple | None = None  # (outcome, status, code) of the first failed stream
        self.same_failures = 0  # how many streams in a row, from the first, failed that same way
        self._next_body: int | None = None  # set at the first stream (the worker's index is known then)

    @staticmethod
    def _tls_context(verify: bool, ca_bundle: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if ca_bundle:
            try:
                ctx.load_verify_locations(ca_bundle)
            except (OSError, ssl.SSLError) as err:
                raise SetupError(f"[stream] ca_bundle {ca_bundle!r} cannot be loaded: {err}") from None
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def prepare_run_dir(self, managed: bool = False) -> None:
        """The run's folder, then fail before any load when results cannot be written. Plain
        `locust -f` (local or master) creates it; a child of `sseload run` (``managed``) adopts the
        one its supervisor created. Both through sseload.run.runinfo, the one place that decides."""
        try:
            if managed:
                self.run_dir = runinfo.adopt_run_dir(self.results_dir, self._asked_run_id)
            else:
                self.run_dir = runinfo.create_run_dir(self.results_dir, self._asked_run_id, self.scenario.name)
        except runinfo.RunDirError as err:
            raise SetupError(str(err)) from None
        self.run_id = self.run_dir.name
        try:
            probe = self.run_dir / ".write-test"
            probe.write_bytes(b"x" * 65536)
            probe.unlink()
        except OSError as err:
            raise SetupError(
                f"cannot write results to {self.run_dir} ({err.strerror}); "
                "pick another --results-dir or free some space"
            ) from None

    @staticmethod
    def _tokenizer(path: str, base_dir: Path | None):
        if not path:
            return None
        where = Path(path) if Path(path).is_absolute() or base_dir is None else base_dir / path
        try:
            return load_tokenizer(str(where))
        except ValueError as err:
            raise SetupError(str(err)) from None

    def next_request(self, worker: int = 0) -> PreparedRequest:
        """Bodies are taken in turn (a size sweep spreads evenly over the run, a prompt dataset is
        sent in its order); each worker starts at its own place, so workers do not send the same
        prompts at the same moments."""
        requests = self.requests
        return requests[self._next_index(worker, len(requests))] if len(requests) > 1 else requests[0]

    def next_conversation(self, worker: int = 0) -> body_mod.Conversation:
        """[body] multi_turn: the next conversation, taken in turn as bodies are (next_request)."""
        return self.conversations[self._next_index(worker, len(self.conversations))]

    def _next_index(self, worker: int, n: int) -> int:
        if self._next_body is None:
            self._next_body = worker * WORKER_BODY_STRIDE
        self._next_body += 1
        return self._next_body % n

    def request_for(self, body: bytes) -> PreparedRequest:
        """A request of the scenario's with this body (a conversation's turn, built when it is sent)."""
        req = self.scenario.request
        return PreparedRequest.build(req.method, self.url, req.headers, body)

    def worker_report(self) -> dict:
        """What a worker tells the master when its users have stopped."""
        rec = self.recorder
        return {
            "streams_started": self.streams_started,
            "streams_recorded": rec.streams_recorded if rec else 0,
            "events_recorded": rec.events_recorded if rec else 0,
            "outcomes": dict(rec.outcomes) if rec else {},
            "health": self.health.summary(),
            "health_seconds": self.health.seconds,
            "partial_reasons": self.partial.reasons,
        }

    def run_info(self, environment, snapshot: bool = False) -> dict:
        """run.json's fields; ``snapshot``: taken while the load runs (on a master, no worker has
        sent its final report yet: none is lost, and what it started is what has arrived)."""
        scenario = redact.scenario_to_write(asdict(self.scenario))
        opts = environment.parsed_options
        summary = self.health.summary()
        counts = {
            "streams_started": self.streams_started,
            "streams_recorded": self.recorder.streams_recorded if self.recorder else 0,
            "events_recorded": self.recorder.events_recorded if self.recorder else 0,
            "outcomes": dict(self.recorder.outcomes) if self.recorder else {},
            "buffered_streams": getattr(self.recorder.sink, "buffered_streams", 0) if self.recorder else 0,
        }
        workers = None
        lost: list[str] = []
        refused = 0
        if self.role == "master" and self.collector is not None:
            collector = self.collector
            lost = [] if snapshot else collector.lost_workers(environment)
            counts = {  # what the master recorded, the lost workers' streams included
                "streams_started": collector.sink.streams_written if snapshot else collector.streams_started(lost),
                "streams_recorded": collector.sink.streams_written,
                "events_recorded": collector.sink.events_written,
                "outcomes": dict(sorted(collector.outcomes.items())),
                "buffered_streams": collector.sink.buffered_streams,
            }
            workers = [r["health"] for r in collector.reports.values()]
            summary = merge_summaries(workers)
            refused = collector.gate.refused_messages
        return {
            "schema_version": sseload.SCHEMA_VERSION,
            "run_id": self.run_id,
            "sseload_version": sseload.__version__,
            "locust_version": locust.__version__,
            "python": platform.python_version(),
            "machine": {"hostname": socket.gethostname(), "platform": platform.platform(),
                        "cpus": os.cpu_count()},
            "target_url": redact.mask_url(self.url),
            "auth_method": self.auth.method,
            "insecure_tls": self.insecure,
            # the reference target that `sseload run` started: lateness is then the harness's own error
            "embedded_target": bool(getattr(opts, "sseload_embedded", False)),
            "scenario": scenario,
            "users": getattr(opts, "num_users", None),
            "spawn_rate": getattr(opts, "spawn_rate", None),
            "run_time": getattr(opts, "run_time", None),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            **self.partial.fields(),
            **counts,
            "workers": len(workers) + len(lost) if workers is not None else 0,
            "lost_workers": lost,
            "refused_messages": refused,  # not signed with the run key (sseload.record.runkey.MessageGate)
            "health": summary,
            "worker_health": workers,
            "tuning": self.tuning.to_dict(),
        }

    def arrivals(self, environment) -> Arrivals:
        """The open model's one schedule in this process, at this process's share of the rate."""
        if self._arrivals is None:
            load = self.scenario.load
            opts = environment.parsed_options
            total = getattr(opts, "num_users", None) or load.users
            here = getattr(environment.runner, "target_user_count", 0) or total
            run_s = getattr(opts, "run_time", None) or getattr(opts, "sseload_run_s", None)
            self._arrivals = Arrivals(load.arrival, load.rate_per_s * min(1.0, here / max(1, total)),
                                      float(run_s) if run_s else None)
        return self._arrivals

    def all_active(self) -> int:
        """Streams open now: this process's, and on a master its workers' as they last reported."""
        return self.active_streams + sum(self.worker_active.values())

    def after_stream(self, record: StreamRecord, environment, sent: bool = True) -> None:
        """Stop early when the run can only measure a broken setup: the first streams all failed
        authentication, or all failed the same other way with nothing succeeding. A stream never
        sent (a body skipped for its size) says nothing of the service: it does not count.
        An OpenAI-style stream's token facts also go to the web UI's tab here (webui.LiveStats)."""
        if self.live_enabled and record.output_tokens >= 0:
            ttft_ns = record.ttft_ns
            tpot_ms = float(tpot(record.duration_ns, ttft_ns, record.output_tokens))
            self.live.add_tokens(ttft_ns / 1e6 if ttft_ns >= 0 else None, record.output_tokens,
                                 tpot_ms if record.outcome is Outcome.OK and tpot_ms == tpot_ms else None)
        outcome = record.outcome
        if outcome in AUTHENTICATED:
            self.auth_ok = True
        if outcome in SUCCEEDED:
            self.succeeded = True
        if self.succeeded or self.stopped_early or not outcome.error or not sent:
            return
        if outcome is Outcome.AUTH_ERROR:
            self.auth_failures += 1
            limit = self.scenario.auth.stop_after_failures
            if not self.auth_ok and limit and self.auth_failures >= limit:
                if self.scenario.auth.method == "none":
                    advice = "the service demands authentication the scenario does not give: set [auth] method"
                else:
                    advice = (f"check the credentials for [auth] method = {self.scenario.auth.method!r} "
                              "(the gateway locks an AK after 5 failures)")
                self._stop_early(environment, runinfo.AUTH_STOP,
                                 f"stopped early: the first {self.auth_failures} streams all failed authentication "
                                 f"({record.error_code or 'no error code'}); {advice}")
            return
        limit = self.scenario.load.stop_after_failures
        if not limit:
            return
        cause = (outcome, record.status, record.error_code)
        if self.first_failure is None:
            self.first_failure = cause
        if cause != self.first_failure:  # failures of more than one kind: the service's, not the setup's
            self.succeeded = True  # (stop looking: nothing more to learn about the setup)
            return
        self.same_failures += 1
        if self.same_failures >= limit:
            status = f" {record.status}" if record.status else ""
            code = f" {record.error_code}" if record.error_code else ""
            self._stop_early(environment, runinfo.FAILURE_STORM,
                             f"stopped early: the first {limit} streams all failed the same way, "
                             f"{outcome}{status}{code} ({record.error[:300]}), and none succeeded; check -H, the "
                             "path and the scenario ([load] stop_after_failures = 0 runs on regardless)")

    def _stop_early(self, environment, code: str, text: str) -> None:
        self.stopped_early = True
        self.partial.add(code, text)
        log.error(text)
        environment.process_exit_code = 2
        if environment.runner is not None:
            import gevent

            gevent.spawn(environment.runner.quit)


def context(environment) -> RunContext:
    ctx = getattr(environment, CONTEXT_ATTR, None)
    if ctx is None:  # a locustfile imported SSEUser without going through init (tests, library use)
        ctx = _build_context(environment)
    return ctx


def _build_context(environment, role: str = "local") -> RunContext:
    opts = environment.parsed_options
    scenario_path = getattr(opts, "scenario", None) if opts else None
    if scenario_path:
        scenario = load_scenario(scenario_path)
    elif environment.host and not getattr(opts, "sseload_embedded", False):
        scenario = for_host(environment.host)  # a service nobody described: judged by its clean end
    else:
        scenario = default_scenario()
    if opts is not None:
        apply_request_flags(scenario, opts)
    results_dir = Path(getattr(opts, "results_dir", None) or "results")
    run_id = getattr(opts, "run_id", None)  # None: a default id, taken when the folder is made
    ctx = RunContext(scenario, environment.host, results_dir, run_id,
                     insecure=bool(getattr(opts, "insecure", False)), role=role)
    setattr(environment, CONTEXT_ATTR, ctx)
    return ctx


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    group = parser.add_argument_group("sseload")
    group.add_argument("--scenario", default=None, help="sseload scenario (TOML); default: the embedded one")
    group.add_argument("--results-dir", default="results", help="where run directories go (default results/)")
    group.add_argument("--run-id", default=None, help="name of this run's directory, refused if it exists "
                       "(default: time-scenario)")
    group.add_argument("--insecure", action="store_true", default=False,
                       help="do not verify TLS certificates (the report says so)")
    add_request_flags(group)
    # set by `sseload run` when the host is the reference target it started (its completion rule)
    group.add_argument("--sseload-embedded", action="store_true", default=False, help=argparse.SUPPRESS)
    # set by `sseload run` for workers, which get no -t: the open model schedules no arrival after it
    group.add_argument("--sseload-run-s", type=float, default=None, help=argparse.SUPPRESS)
    group.add_argument("--sseload-prometheus", metavar="[HOST:]PORT", default=None,
                       help="serve live metrics for Prometheus at http://HOST:PORT/metrics (host default 127.0.0.1)")
    # set by `sseload run`, which writes the summary and report itself once Locust exits
    group.add_argument("--sseload-managed", action="store_true", default=False, help=argparse.SUPPRESS)
    # set by `sseload run`: a progress line while the load runs (sseload.views.console.Progress)
    group.add_argument("--sseload-progress", action="store_true", default=False, help=argparse.SUPPRESS)
    # set by `sseload run` for its children: once sseload is gone, die after this grace (see _on_init)
    group.add_argument("--sseload-orphan-grace-s", type=float, default=None, help=argparse.SUPPRESS)
    # The web UI has no authentication and can start load: loopback unless --web-host (or
    # LOCUST_WEB_HOST, or locust.conf) says otherwise; then webui.install says how to protect it.
    # (Locust prints --help before it imports a locustfile: its "Defaults to '*'" stays there.)
    parser.set_defaults(web_host=webui.DEFAULT_WEB_HOST)


def _memoise_default_args() -> None:
    """Locust's worker, on every spawn message of a ramp, calls default_args_dict() once per
    option inside a comprehension, and each call builds a whole argparse parser: measured as
    50-100 ms stalls of every open stream. The answer never changes within a process."""
    from locust import argument_parser

    if not hasattr(argument_parser.default_args_dict, "cache_info"):
        argument_parser.default_args_dict = functools.lru_cache(maxsize=1)(argument_parser.default_args_dict)


def _run_key(role: str) -> RunKey:
    """The run key a master and its workers share (SSELOAD_RUN_KEY), or the sentence on how to set it."""
    try:
        return RunKey.from_env(role)
    except RunKeyError as err:
        raise SetupError(str(err)) from None


def _fatal(message: str) -> None:
    sys.stderr.write(f"sseload: {redact.terminal(message)}\n")
    sys.stderr.flush()
    os._exit(2)  # before any load: nothing to flush, and Locust must not print a traceback


def _prepare_users(environment, ctx: RunContext) -> None:
    """What a process that runs users needs before load starts."""
    warm_up()
    # The writer thread must not hold the GIL for the default 5 ms while reads wait on it.
    sys.setswitchinterval(0.0005)
    wait_s = ctx.scenario.load.wait_s
    for user_class in environment.user_classes:
        if getattr(user_class, "wait_time", None) is None:
            from locust import constant

            user_class.wait_time = constant(wait_s)


def _start_recording(ctx: RunContext) -> None:
    # Start-up garbage is frozen out of the collector's sight and young collections made rarer:
    # unfrozen, full collections pause the loop long enough to inflate p99.9 tenfold.
    # Locust's Runner.stop() logs its caller with inspect.stack(); the first such call scans
    # every loaded module (~40 ms, blocking the hub while the last streams are still open).
    # Paying it here fills inspect's module cache, so the stop costs well under a millisecond.
    inspect.getframeinfo(inspect.stack()[0][0])
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
    ctx.recorder.start()
    ctx.health.start(lambda: ctx.active_streams)


def _start_live(environment, ctx: RunContext) -> None:
    """The aggregating process's tick (sseload.views.live): every TICK_S it counts the open streams'
    events, adds a point to the live history and, with --sseload-progress, prints the progress line.
    With --sseload-prometheus it also serves the live metrics (sseload.views.prometheus)."""
    import gevent

    from sseload.views.console import Progress

    opts = environment.parsed_options
    progress = Progress.to_stderr() if getattr(opts, "sseload_progress", False) else None
    try:
        total_s = float(getattr(opts, "run_time", None) or 0) or None
    except (TypeError, ValueError):
        total_s = None
    if progress is not None:
        environment.events.test_stop.add_listener(lambda **_kw: progress.end())
    address = getattr(opts, "sseload_prometheus", None)
    if address:
        from sseload.views import prometheus

        try:
            host, port = prometheus.serve(ctx, address)
        except ValueError as err:
            raise SetupError(str(err)) from None
        except OSError as err:
            raise SetupError(f"--prometheus {address}: cannot listen there ({err.strerror}); "
                             "pick another port") from None
        log.info("sseload: live metrics for Prometheus at http://%s:%d/metrics", host, port)

    def loop() -> None:
        while True:
            gevent.sleep(TICK_S)
            running = load_running(environment)
            if not running and not ctx.active_streams:
                continue
            try:
                ctx.live.tick(ctx.all_active())
                if progress is not None and running:
                    progress.show(ctx.live, ctx.all_active(), total_s)
            except Exception:  # the live view must never stop the run
                log.exception("sseload: the live numbers failed")

    gevent.spawn(loop)


def _stop_running_users(environment, ctx: RunContext) -> None:
    """On SIGTERM/SIGINT Locust fires `quitting` before it stops the users: stop them first, so
    streams still open finish (within --stop-timeout) and are recorded, not dropped."""
    runner = environment.runner
    if runner is not None and runner.state in ("spawning", "running"):
        ctx.partial.add(runinfo.SIGNAL, "stopped by a signal before the run time ended")
        runner.stop()


def _write_snapshot(ctx: RunContext, info: dict, open_streams: str) -> None:
    """run.json of a snapshot taken while the load runs (the web UI's report link): what was open is
    not in it, which it says; the run's own partial reasons are left as they were, so the final
    run.json does not inherit the snapshot's."""
    partial = runinfo.PartialReasons(ctx.partial.reasons)
    partial.add(runinfo.RUNNING, f"a snapshot while the load ran: {open_streams} and are not in it")
    runinfo.write(ctx.run_dir, {**info, **partial.fields(), "ended_at": datetime.now(UTC).isoformat()})


def load_running(environment) -> bool:
    """Users are (or are being) started, or still stopping: streams may be open."""
    runner = environment.runner
    return runner is not None and runner.state in ("spawning", "running", "stopping", "cleanup")


class Role:
    """One role's part of the run's lifecycle; each hook of Locust's calls one method."""

    def init(self, environment, ctx: RunContext) -> None:
        """Locust's ``init``: set up before any load (a SetupError stops with its sentence)."""

    def test_start(self, environment, ctx: RunContext) -> None:
        """Load starts."""

    def test_stopping(self, environment, ctx: RunContext) -> None:
        """Load is about to stop."""

    def test_stop(self, environment, ctx: RunContext) -> None:
        """Users have stopped."""

    def quitting(self, environment, ctx: RunContext) -> None:
        """The process is about to exit: everything recorded must be written now."""

    def snapshot(self, environment, ctx: RunContext) -> None:
        """Write the run's files as they are now (the web UI's report link)."""


class _UsersRole(Role):
    """A process that runs users: it records from the load's start."""

    def test_start(self, environment, ctx: RunContext) -> None:
        _start_recording(ctx)


class LocalRole(_UsersRole):
    """A standalone process: runs the users and writes the run's files itself."""

    def init(self, environment, ctx: RunContext) -> None:
        ctx.prepare_run_dir(managed=_managed(environment))
        ctx.recorder = Recorder(ParquetSink(ctx.run_dir, ctx.send_time_ns))
        ctx.live_enabled = True
        webui.install(environment, ctx)
        _start_live(environment, ctx)
        _prepare_users(environment, ctx)

    def test_stop(self, environment, ctx: RunContext) -> None:
        """Users have stopped: close the files so the run can be read (and reported)."""
        ctx.ended_at = datetime.now(UTC)
        ctx.recorder.close_sink()

    def quitting(self, environment, ctx: RunContext) -> None:
        _stop_running_users(environment, ctx)
        ctx.ended_at = ctx.ended_at or datetime.now(UTC)
        ctx.health.stop()
        ctx.recorder.close()
        info = self._write_run(environment, ctx)
        log.info("sseload: %d streams, %d events recorded in %s", info["streams_recorded"],
                 info["events_recorded"], ctx.run_dir)
        _finish_unmanaged(environment, ctx)

    def snapshot(self, environment, ctx: RunContext) -> None:
        """The run's files as they are now (the web UI's report link). While the load runs this is a
        snapshot: its open streams are not in it, and that is said in it only: the final run.json
        does not inherit it."""
        ctx.recorder.close_sink()
        if not load_running(environment):  # a stopped run keeps when its load ended
            self._write_run(environment, ctx)
            return
        ctx.health.write(ctx.run_dir / "health.parquet")
        _write_snapshot(ctx, ctx.run_info(environment), f"{ctx.active_streams} streams were still open")

    @staticmethod
    def _write_run(environment, ctx: RunContext) -> dict:
        """health.parquet and run.json; partial when anything was not recorded."""
        rec = ctx.recorder
        if rec.write_error is not None:
            ctx.partial.add(runinfo.WRITE_ERROR, f"writing results failed: {rec.write_error}")
        if ctx.streams_started != rec.streams_recorded:
            ctx.partial.add(runinfo.NOT_RECORDED,
                            f"{ctx.streams_started - rec.streams_recorded} streams started but not recorded")
        written = getattr(rec.sink, "streams_on_disk", None)
        if written is not None and written < rec.streams_recorded:
            ctx.partial.add(runinfo.NOT_WRITTEN,
                            f"{rec.streams_recorded - written} streams recorded but not written to {ctx.run_dir}")
        ctx.health.write(ctx.run_dir / "health.parquet")
        info = ctx.run_info(environment)
        runinfo.write(ctx.run_dir, info)
        return info


class WorkerRole(_UsersRole):
    """A worker: runs users and ships every batch and its final totals to the master."""

    def init(self, environment, ctx: RunContext) -> None:
        self.key = _run_key("worker")  # every message to the master is signed with it (sseload.record.runkey)
        ctx.recorder = Recorder(WorkerSink(environment.runner, self.key, ctx.send_time_ns))
        ctx.live_enabled = True

        @environment.events.report_to_master.add_listener
        def on_report(client_id, data, **_kw):  # what it counted live since the last report (sseload.views.live)
            data["sseload"] = self.key.sign(REPORT, client_id, ctx.live.take_report(ctx.active_streams))

        _memoise_default_args()
        _prepare_users(environment, ctx)

    def test_stop(self, environment, ctx: RunContext) -> None:
        """Users have stopped: ship the last batch and the totals (before `client_stopped`)."""
        ctx.recorder.flush(wait=True)
        ctx.recorder.drain()
        runner = environment.runner
        runner.send_message(DONE, self.key.sign(DONE, runner.client_id, ctx.worker_report()))

    def quitting(self, environment, ctx: RunContext) -> None:
        _stop_running_users(environment, ctx)
        ctx.ended_at = datetime.now(UTC)
        ctx.health.stop()
        try:
            ctx.recorder.close()
        except Exception as err:  # the master may be gone already
            log.warning("sseload worker: final flush failed: %s", err)


class MasterRole(Role):
    """The master: runs no users; collects the workers' batches and writes the run's files."""

    def init(self, environment, ctx: RunContext) -> None:
        key = _run_key("master")  # what a worker sends without its signature is refused (MessageGate)
        ctx.prepare_run_dir(managed=_managed(environment))
        runner = environment.runner
        ctx.collector = MasterCollector(ParquetSink(ctx.run_dir, background=True), key)
        runner.register_message(BATCH, ctx.collector.on_batch)
        runner.register_message(DONE, ctx.collector.on_done)
        webui.install(environment, ctx)
        _start_live(environment, ctx)

        @environment.events.worker_report.add_listener
        def on_worker_report(client_id, data, **_kw):
            if "sseload" in data and ctx.collector.gate.admit(REPORT, client_id, data["sseload"]):
                ctx.live.merge_report(data["sseload"], ctx.worker_active, client_id)

    def test_stopping(self, environment, ctx: RunContext) -> None:
        """Wait for every live worker's last batch before the master may quit.

        Locust's headless run-time limit calls quit() on the master, which tells workers to quit
        without a stop and exits half a second later: their open streams and last batch would be
        lost. So the master asks them to stop (their users finish within --stop-timeout) and waits
        for their final reports.
        """
        import gevent

        runner = environment.runner
        pending = {c.id for c in runner.clients.all if c.state != "missing"} - set(ctx.collector.reports)
        for client_id in pending:
            runner.send_message("stop", None, client_id)
        deadline = time.monotonic() + environment.stop_timeout + 10
        try:
            while time.monotonic() < deadline:
                live = {c.id for c in runner.clients.all if c.state != "missing"}
                if not (live & pending) - set(ctx.collector.reports):
                    return
                gevent.sleep(0.1)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, but still close the files
            log.error("sseload: interrupted again; not waiting for the workers' last batches")
            return
        log.error("sseload: some workers did not report within the stop timeout")

    def test_stop(self, environment, ctx: RunContext) -> None:
        ctx.collector.close()

    def quitting(self, environment, ctx: RunContext) -> None:
        _stop_running_users(environment, ctx)
        ctx.ended_at = ctx.ended_at or datetime.now(UTC)
        self._write_run(environment, ctx)
        _finish_unmanaged(environment, ctx)

    def snapshot(self, environment, ctx: RunContext) -> None:
        if not load_running(environment):
            self._write_run(environment, ctx)
            return
        ctx.collector.close()
        self._note_refused(ctx)
        _write_snapshot(ctx, ctx.run_info(environment, snapshot=True),
                        f"{ctx.all_active()} streams were still open on the workers")

    @staticmethod
    def _note_refused(ctx: RunContext) -> None:
        """Messages refused for their signature make the run partial; the reason counts them as of now."""
        reason = ctx.collector.gate.partial_reason()
        if reason:
            ctx.partial.set(runinfo.REFUSED_MESSAGES, reason)

    @staticmethod
    def _write_run(environment, ctx: RunContext) -> None:
        """run.json and health.parquet of the whole run: workers without a final report are lost."""
        collector = ctx.collector
        collector.close()
        lost = collector.lost_workers(environment)
        if lost:
            ctx.partial.add(runinfo.LOST_WORKERS, f"{len(lost)} worker(s) stopped without their final report "
                                                  f"({', '.join(lost)}): streams they had open or unsent are missing")
        MasterRole._note_refused(ctx)
        for report in collector.reports.values():
            for reason in report.get("partial_reasons", []):
                ctx.partial.add(reason["code"], reason["text"])
        info = ctx.run_info(environment)
        if info["streams_started"] != info["streams_recorded"]:
            ctx.partial.add(runinfo.NOT_RECORDED,
                            f"{info['streams_started'] - info['streams_recorded']} streams started but not recorded")
            info.update(ctx.partial.fields())
        rows = [(i, *row) for i, r in enumerate(collector.reports.values()) for row in r.get("health_seconds", [])]
        HealthMonitor.write_rows(rows, ctx.run_dir / "health.parquet")
        runinfo.write(ctx.run_dir, info)



def _managed(environment) -> bool:
    """Started by `sseload run` (--sseload-managed), which made the run's folder and reports at the end."""
    return bool(getattr(environment.parsed_options, "sseload_managed", False))


def _finish_unmanaged(environment, ctx: RunContext) -> None:
    """Plain `locust -f` (not `sseload run`, which does this once Locust is gone): the same summary,
    verdict and report; a failed verdict is the exit code, else Locust's own (1 on any failure)."""
    opts = environment.parsed_options
    if getattr(opts, "sseload_managed", False) or not getattr(opts, "headless", False):
        return  # (with a web UI the report is a click away: its link writes it)
    from sseload.views import report

    try:
        code = report.finish(ctx.run_dir, ctx.scenario, write_report=True,
                             stopped_early=ctx.stopped_early)
    except Exception as err:  # the files are written: say why the report is not, do not lose the run
        log.error("sseload: the run is in %s but its report could not be written: %s", ctx.run_dir, err)
        code = 3
    if code:
        environment.process_exit_code = max(code, environment.process_exit_code or 0)


ROLES = {"local": LocalRole, "worker": WorkerRole, "master": MasterRole}


def _role_of(runner) -> str:
    from locust.runners import MasterRunner, WorkerRunner

    return "master" if isinstance(runner, MasterRunner) else "worker" if isinstance(runner, WorkerRunner) else "local"


@events.init.add_listener
def _on_init(environment, **_kw) -> None:
    _watch_for_orphaning(getattr(environment.parsed_options, "sseload_orphan_grace_s", None))
    role = _role_of(environment.runner)
    try:
        ctx = _build_context(environment, role)
        ctx.lifecycle = ROLES[role]()
        ctx.lifecycle.init(environment, ctx)
    except (SetupError, ScenarioError) as err:
        _fatal(str(err))
    if environment.host:  # the streams use ctx.url; what Locust shows (its web UI) carries no credential
        environment.host = redact.mask_url(environment.host)


def _watch_for_orphaning(grace_s: float | None) -> None:
    """A child of `sseload run` gets SIGTERM when sseload dies (PR_SET_PDEATHSIG) and stops in
    order; should it be stuck in C code holding the GIL, its signal handler never runs. The
    native watchdog thread SIGKILLs it once the grace for that orderly stop is over."""
    if grace_s is None:
        return
    try:
        from sseload import _reader
    except ImportError:  # not built: the orderly SIGTERM is all there is
        log.warning("sseload._reader is not built: a child stuck in C could outlive sseload")
        return
    _reader.orphan_watchdog(grace_s)


def _forward(hook: str):
    """A listener that hands Locust's event to the process's role (set by the init hook)."""

    def listener(environment, **_kw) -> None:
        ctx = getattr(environment, CONTEXT_ATTR, None)
        lifecycle = getattr(ctx, "lifecycle", None)
        if lifecycle is None:  # SSEUser used without sseload's init (library use)
            return
        if hook == "test_start":
            ctx.started_at, ctx.ended_at = datetime.now(UTC), None
            ctx.live.reset()
        elif hook == "test_stop":  # the history's last point has the streams the stop ended
            ctx.live.tick(ctx.all_active())
            ctx.live.stop()
        getattr(lifecycle, hook)(environment, ctx)

    listener.__name__ = f"_on_{hook}"
    return listener


for _hook in ("test_start", "test_stopping", "test_stop", "quitting"):
    getattr(events, _hook).add_listener(_forward(_hook))


def snapshot_run(environment, ctx: RunContext) -> None:
    """Write run.json for the run as it is now (the web UI's report link)."""
    ctx.lifecycle.snapshot(environment, ctx)
