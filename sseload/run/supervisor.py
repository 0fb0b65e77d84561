"""``sseload run``: the supervisor of one run's processes.

It checks every value before anything starts, makes the run's folder, starts the reference target
when there is no host, then Locust (one standalone process, or a master and its workers) with the
run-plan file (sseload.run.planfile), forwards one signal, stops what is stuck, and once Locust
is gone ends the run as every run ends (sseload.views.report.finish): the exit code is the
verdict's (sseload.run.verdict). Importing this module imports neither Locust nor gevent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from sseload.record import redact
from sseload.record.runkey import RUN_KEY_ENV
from sseload.run import room, runinfo
from sseload.run import verdict as run_verdict
from sseload.run.planfile import OPTION as PLAN_OPTION
from sseload.run.planfile import PlanFile, override_load
from sseload.run.verdict import BadInput
from sseload.scenario import memory
from sseload.scenario.flags import request_flags_argv
from sseload.scenario.load import check_flag, env_vars_used, request_headers, resolve, select
from sseload.scenario.model import Load, Scenario, ScenarioError, from_env
from sseload.scenario.ranges import number_range, parse_seconds

RUN_FOLDER = Path(__file__).parent
LOCUSTFILE = RUN_FOLDER / "locustfile.py"
SHAPE_LOCUSTFILE = RUN_FOLDER / "locustfile_shape.py"
WORKERS_PER_CORE = 4  # more than this and the workers measure each other's scheduling, not the service
WORKERS = number_range(0, WORKERS_PER_CORE * (os.cpu_count() or 1),
                       why=f"0: no workers; {WORKERS_PER_CORE} for each of this machine's {os.cpu_count() or 1} cores")
#: A Locust child whose sseload died has the stop timeout plus this to stop in order, then is killed.
ORPHAN_GRACE_S = 30
#: Locust's start-up (imports, workers connecting) before its run time counts.
STARTUP_S = 60


# --- the embedded target ---

def target_config(scenario: Scenario):
    """The reference target's settings: the scenario's [target] table over the gateway's, checked
    here, where the target is started (a [target] the harness never reads is no concern elsewhere)."""
    from sseload.target.config import ConfigError, TargetConfig

    raw = {"limit_s": scenario.gateway.limit_s, "max_body_bytes": scenario.gateway.max_body_bytes}
    raw.update(scenario.target)
    try:
        return TargetConfig.from_dict(raw, f"{scenario.source or scenario.name}: [target]")
    except ConfigError as err:
        raise BadInput(str(err)) from None


def _embedded_credentials(scenario: Scenario, env: dict[str, str]) -> None:
    """Give the embedded target credentials matching the harness's, inventing throwaway ones.

    With a real service the secrets must be in the environment; against the embedded target
    a missing secret is generated for this run only, so the ready auth scenarios just work.
    """
    auth = scenario.auth

    def get(var: str) -> str:
        if var and not env.get(var):
            env[var] = secrets.token_hex(16)
        return env[var]

    if auth.method == "token":
        env.setdefault("SSELOAD_TARGET_TOKENS", get(auth.token_env))
    elif auth.method == "app_code":
        env.setdefault("SSELOAD_TARGET_APP_CODES", get(auth.app_code_env))
    elif auth.method == "aksk":
        env.setdefault("SSELOAD_TARGET_AKSK", f"{get(auth.ak_env)}:{get(auth.sk_env)}")
        if auth.security_token_env:
            get(auth.security_token_env)
    elif auth.method == "app_key":
        env.setdefault("SSELOAD_TARGET_APP_KEYS", f"{get(auth.app_key_env)}:{get(auth.app_secret_env)}")
    elif auth.method == "iam":
        get(auth.iam_domain_env)
        env.setdefault("SSELOAD_TARGET_IAM_USERS", f"{get(auth.iam_user_env)}:{get(auth.iam_password_env)}")


def _child_setup() -> None:
    """In a child, before exec: Ctrl-C's default action back, and SIGTERM if sseload dies.

    A process started in the background by a non-interactive shell (CI scripts, `cmd &`)
    inherits SIGINT ignored; Locust would then ignore the SIGINT sseload forwards and run on to
    its full run time. PR_SET_PDEATHSIG: the child gets SIGTERM when sseload dies, even by
    SIGKILL (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform == "linux":
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


# Children (target, master, workers) get their own session: Ctrl-C in a terminal reaches only
# sseload, which forwards one signal to the master. Were the signal sent to the whole group,
# workers would stop on their own while the master stops them too (Locust then raises in
# every user), the target would die under streams still finishing, and the master would get
# the signal twice and could be interrupted while writing. Nor may they outlive sseload.
_CHILD = {"start_new_session": True, "preexec_fn": _child_setup}


class EmbeddedTarget:
    def __init__(self, config, env: dict[str, str], workdir: Path) -> None:
        config.port = 0
        config_path = workdir / "target.json"
        config_path.write_text(json.dumps(config.to_dict()))
        port_file = workdir / "target.port"
        self.log_path = workdir / "target.log"
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sseload.target", "--config", str(config_path), "--port", "0",
                 "--port-file", str(port_file)],
                env=env, stdout=log, stderr=subprocess.STDOUT, **_CHILD,
            )
        deadline = time.monotonic() + 15
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BadInput(f"the reference target did not start: {self.log_path.read_text()[-500:]}")
            time.sleep(0.02)
        self.url = f"http://{config.host}:{port_file.read_text().strip()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- before anything starts ---

class RunSettings(NamedTuple):
    """The values a run goes with: the flags over the scenario's [load], each checked."""

    users: int
    spawn_rate: float
    run_time: str
    workers: int
    run_id: str
    results_dir: Path

    @property
    def run_dir(self) -> Path:
        return self.results_dir / self.run_id


def run_settings(args: argparse.Namespace, scenario: Scenario) -> RunSettings:
    """Check every value before anything starts: a mistake costs milliseconds, not a started target.

    A flag overrides the scenario, so the effective value is checked and the message names where it
    came from. Once all passed, the run's folder is created (exclusively: see runinfo.create_run_dir)."""
    load = scenario.load
    users = _over(args.users, "users", "-u/--users", "-u 10", load)
    spawn_rate = _over(args.spawn_rate, "spawn_rate", "-r/--spawn-rate", "-r 10", load)
    run_time = _over(args.run_time, "run_time", "-t/--run-time", "-t 30s", load)
    peak = users if load.shape == "constant" else memory.peak_users(load)  # a shape's users are the scenario's
    said = (f"-u/--users is {users}" if args.users is not None and load.shape == "constant"
            else f"{scenario.source or scenario.name}: [load] asks for {peak:,} users at once")
    crowded = memory.too_many(peak, said, memory.available_bytes())
    if crowded:
        raise BadInput(crowded)
    check_flag(args.workers, WORKERS, "--workers", "--workers 2")
    results_dir = Path(args.results_dir)
    # Last, once every other value passed: the run's folder, created exclusively (sseload.run.runinfo);
    # its Locust children adopt it (the run-plan file names it) and never create it again.
    try:
        run_dir = runinfo.create_run_dir(results_dir, args.run_id, scenario.name)
    except runinfo.RunDirError as err:
        raise BadInput(str(err)) from None
    return RunSettings(users, spawn_rate, run_time, args.workers, run_dir.name, results_dir)


def _over(value, key: str, flag: str, example: str, load: Load):
    """A flag's value over [load] ``key``'s, held to that key's range; the scenario's own was checked
    where it was loaded."""
    return getattr(load, key) if value is None else check_flag(value, Load.__dataclass_fields__[key].metadata,
                                                                 flag, example)


def _remember_secrets(scenario: Scenario, host: str | None) -> None:
    """What this process prints (the summary, errors) masks the run's credentials too (sseload.record.redact)."""
    req = scenario.request
    redact.remember_request(req.headers, host or req.url, req.secret_headers)
    with contextlib.suppress(ScenarioError):  # a ${VAR} not set: the run's process says so
        redact.remember_request(request_headers(req))


def _run_env(scenario: Scenario) -> dict[str, str]:
    """The environment of the run's processes: the variables its secrets come from ([auth] and
    ``${VAR}``) without the trailing line end a value read from a file keeps, removed here and said
    here once (sseload.scenario.model.from_env), not by every Locust process. A line break left inside: exit 2."""
    from sseload.auth.schemes import secret_vars

    env = dict(os.environ)
    for var in sorted({*secret_vars(scenario.auth), *env_vars_used(scenario)}):
        if env.get(var):
            env[var] = from_env(var, env[var])
    return env


# --- the run ---

def run(args: argparse.Namespace, *, load: Mapping[str, Any] | None = None, progress: bool = True) -> int:
    """``sseload run``; its exit code (sseload.run.verdict). A point of ``sseload search``
    (sseload.run.search) is a run too: ``load`` holds its [load] values over the scenario's (for the
    Locust children, in the run-plan file), ``progress`` whether the progress line shows."""
    if args.prometheus:
        from sseload.views.prometheus import parse_address

        try:
            parse_address(args.prometheus)
        except ValueError as err:
            raise BadInput(str(err)) from None
    scenario_path = str(resolve(args.scenario)) if args.scenario else None  # a ready scenario's name: its file
    scenario, _ = select(scenario_path, args.host, args)
    override_load(scenario, load or {})
    embedded = not args.host and not scenario.request.url
    target_settings = target_config(scenario) if embedded else None
    _remember_secrets(scenario, args.host)
    env = _run_env(scenario)
    settings = run_settings(args, scenario)
    run_time, run_dir = settings.run_time, settings.run_dir
    env.setdefault("PYTHONUNBUFFERED", "1")
    host = args.host
    target = None
    with tempfile.TemporaryDirectory(prefix="sseload-") as tmp:
        if embedded:
            _embedded_credentials(scenario, env)
            target = EmbeddedTarget(target_settings, env, Path(tmp))
            host = target.url
            print(f"sseload: reference target at {host}", flush=True)
        stop_timeout = math.ceil(scenario.gateway.limit_s + scenario.stream.grace_s)  # whole seconds
        if scenario.stream.reconnect:  # a feed never ends by itself: its open connection is cancelled at the stop
            stop_timeout = 0
        plan = PlanFile(results_dir=str(settings.results_dir), run_id=settings.run_id, embedded_target=embedded,
                        run_s=parse_seconds(run_time), progress=progress,
                        orphan_grace_s=stop_timeout + ORPHAN_GRACE_S, load=dict(load or {})).write(Path(tmp))
        shaped = scenario.load.shape != "constant"
        common = [sys.executable, "-m", "locust", "-f", str(SHAPE_LOCUSTFILE if shaped else LOCUSTFILE),
                  PLAN_OPTION, str(plan), "--loglevel", args.loglevel]
        if host:
            common += ["-H", host]
        if scenario_path:
            common += ["--scenario", scenario_path]
        if args.insecure:
            common.append("--insecure")
        common += request_flags_argv(args)
        # One summary at the end, sseload's: Locust's own tables go to locust.json (and the CSVs) instead,
        # written here (Locust's own writes end in a traceback on a full disk), moved into the run's folder after
        locust_files = Path(tmp) / "locust"
        cmd = common + ["--headless", "-t", str(run_time), "--stop-timeout", str(stop_timeout), "--only-summary",
                        "--json-file", str(locust_files / "locust"), "--csv", str(locust_files / "locust")]
        if args.prometheus:  # (only the process that aggregates takes it)
            cmd += ["--sseload-prometheus", args.prometheus]
        if not shaped:  # a shape sets the user count itself, from the scenario
            cmd += ["-u", str(settings.users), "-r", str(settings.spawn_rate)]
        workers: list[subprocess.Popen] = []
        if settings.workers:
            port = _free_port()
            cmd += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                    "--expect-workers", str(settings.workers)]
            # a new run key for this run's master and workers (sseload.record.runkey): in their
            # environment only, never on a command line or in a file
            env[RUN_KEY_ENV] = secrets.token_hex(32)
            workers = [subprocess.Popen(common + ["--worker", "--master-host", "127.0.0.1", "--master-port",
                                                  str(port)], env=env, **_CHILD)
                       for _ in range(settings.workers)]
        proc = subprocess.Popen(cmd, env=env, **_CHILD)
        signals = _Forwarder(proc, workers)
        old = {s: signal.signal(s, signals.forward) for s in (signal.SIGINT, signal.SIGTERM)}
        # Locust stops by itself at its run time plus the stop timeout; past that and a grace it is stuck
        hard_stop = time.monotonic() + parse_seconds(run_time) + stop_timeout + STARTUP_S + ORPHAN_GRACE_S
        try:
            code = wait_or_stop(proc, hard_stop)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            stop_all(workers, grace_s=2)
            if target is not None:
                target.stop()
        unwritten = room.move_in(sorted(locust_files.glob("locust*")), run_dir)
    return _end(run_dir, scenario, code, signals, write_report=not args.no_report, unwritten=unwritten)


def _end(run_dir: Path, scenario: Scenario, code: int, signals: _Forwarder, write_report: bool,
         unwritten: list[str]) -> int:
    """Once Locust is gone: the run ends as every run does (sseload.views.report.finish); ``unwritten``
    says Locust's files its folder could not take (sseload.run.room.move_in), which the verdict counts."""
    from sseload.views.report import finish

    if signals.abandoned:  # the children were killed; say what is there, exit as for the signal
        try:
            finish(run_dir, scenario, write_report=False, unwritten=unwritten)
        except Exception as err:  # whatever the cut files say, the exit code is the signal's
            print(f"sseload: the abandoned run cannot be read: {err}", file=sys.stderr)
        return run_verdict.signal_code(signals.interrupted)
    if code == run_verdict.BAD_INPUT and runinfo.read(run_dir) is None:
        for text in unwritten:
            print(f"sseload: {text}", file=sys.stderr)
        return run_verdict.BAD_INPUT  # the locustfile already said what is wrong
    if signals.interrupted:  # names the signal; explains Locust's generic "stopped by a signal"
        runinfo.mark_interrupted(run_dir, signals.interrupted)
    return finish(run_dir, scenario, write_report=write_report, unwritten=unwritten)


class _Forwarder:
    """The signal handler of `sseload run`: the first signal goes to Locust (which stops in order);
    the third abandons the run (its children are killed)."""

    def __init__(self, proc: subprocess.Popen, workers: list[subprocess.Popen]) -> None:
        self.proc, self.workers = proc, workers
        self.interrupted: str | None = None  # the first signal's name
        self.seen = 0

    @property
    def abandoned(self) -> bool:
        return self.seen >= 3

    def forward(self, signum, _frame) -> None:
        self.seen += 1
        if self.seen == 1:
            self.interrupted = signal.Signals(signum).name
            print("sseload: stopping: open streams may finish, then results are written "
                  "(Ctrl-C twice more abandons the run)", file=sys.stderr, flush=True)
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)
        elif self.abandoned:
            print("sseload: abandoning the run; results may be incomplete", file=sys.stderr, flush=True)
            for child in [self.proc, *self.workers]:
                if child.poll() is None:
                    child.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_or_stop(proc: subprocess.Popen, hard_stop: float, term_grace_s: float = 10.0) -> int:
    """Locust's exit code; past ``hard_stop`` (monotonic) it is stuck: SIGTERM, then SIGKILL."""
    while True:
        try:
            return proc.wait(max(0.0, hard_stop - time.monotonic()))
        except InterruptedError:
            continue
        except subprocess.TimeoutExpired:
            print(f"sseload: locust (pid {proc.pid}) did not stop after its run time and stop timeout; "
                  "stopping it (SIGTERM, then SIGKILL). This is a bug: please report it with the run's "
                  "directory", file=sys.stderr, flush=True)
            proc.terminate()
            try:
                return proc.wait(term_grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()


def stop_all(procs: list[subprocess.Popen], grace_s: float) -> None:
    """Stop the workers once the master has gone.

    Nothing a worker sends can arrive after that, and the master has already waited for each
    one's last batch. Locust's worker handles messages one at a time and, after a `stop`,
    sleeps out the whole stop timeout before it reads the master's `quit`, at the end of every
    run with workers. So: a short grace, then SIGTERM (a worker then runs its own orderly
    shutdown), then SIGKILL."""
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
