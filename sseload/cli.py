"""``sseload``: run load, serve the reference target, report, check thresholds, compare runs.

Exit codes are listed once, in :data:`EXIT_CODES` (shown by ``sseload run --help``).
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
from pathlib import Path
from typing import NamedTuple

from sseload import __version__
from sseload.record import redact
from sseload.record.runkey import RUN_KEY_ENV
from sseload.run import runinfo
from sseload.scenario.model import (
    Load,
    Scenario,
    ScenarioError,
    add_request_flags,
    apply_request_flags,
    default_scenario,
    env_vars_used,
    for_host,
    from_env,
    parse_seconds,
    request_headers,
)
from sseload.scenario.model import load as load_scenario
from sseload.scenario.model import ready as ready_scenarios
from sseload.scenario.model import resolve as resolve_scenario

LOCUSTFILE = Path(__file__).parent / "run" / "locustfile.py"
SHAPE_LOCUSTFILE = Path(__file__).parent / "run" / "locustfile_shape.py"

EXIT_CODES = (
    ("0", "the run passed"),
    ("1", "a threshold failed, or no stream succeeded"),
    ("2", "bad input: scenario, flags or environment (one sentence says which)"),
    ("3", "the run recorded nothing (Locust or the target failed)"),
    ("128+N", "stopped by signal N (130: Ctrl-C); the results written so far are kept"),
)
WORKERS_PER_CORE = 4  # more than this and the workers measure each other's scheduling, not the service


class CliError(Exception):
    """A user mistake: printed as one sentence, exit code 2."""


# --- the embedded target ---

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
#: A Locust child whose sseload died has the stop timeout plus this to stop in order, then is killed.
ORPHAN_GRACE_S = 30
#: Locust's start-up (imports, workers connecting) before its run time counts.
STARTUP_S = 60


class EmbeddedTarget:
    def __init__(self, scenario: Scenario, env: dict[str, str], workdir: Path) -> None:
        cfg = scenario.target_config()
        cfg.port = 0
        config_path = workdir / "target.json"
        config_path.write_text(json.dumps(cfg.to_dict()))
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
                raise CliError(f"the reference target did not start: {self.log_path.read_text()[-500:]}")
            time.sleep(0.02)
        self.url = f"http://{cfg.host}:{port_file.read_text().strip()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- run ---

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
    where = f"{scenario.source or scenario.name}: [load]"
    users = args.users if args.users is not None else load.users
    if users < 1:
        source = "-u/--users" if args.users is not None else f"{where} users"
        raise CliError(f"{source} is {users}; give at least 1 user, e.g. -u 10")
    spawn_rate = args.spawn_rate if args.spawn_rate is not None else load.spawn_rate
    if not spawn_rate > 0 or math.isinf(spawn_rate):  # `not >` also refuses NaN
        source = "-r/--spawn-rate" if args.spawn_rate is not None else f"{where} spawn_rate"
        raise CliError(f"{source} is {spawn_rate:g}; give a positive number of users started per second, e.g. -r 10")
    run_time = args.run_time if args.run_time is not None else load.run_time
    source = "-t/--run-time" if args.run_time is not None else f"{where} run_time"
    try:
        run_s = parse_seconds(run_time)
    except ValueError:
        raise CliError(f"{source} = {run_time!r} is not a time span; write e.g. 30s, 5m or 1h30m") from None
    if run_s <= 0:
        raise CliError(f"{source} must be more than 0 s, e.g. 30s or 5m")
    cores = os.cpu_count() or 1
    most = WORKERS_PER_CORE * cores
    if not 0 <= args.workers <= most:
        raise CliError(f"--workers is {args.workers}; give 0 (no workers) to at most {most} on this machine's "
                       f"{cores} cores (each worker needs a core to measure well)")
    results_dir = Path(args.results_dir)
    # Last, once every other value passed: the run's folder, created exclusively (sseload.run.runinfo);
    # its Locust children adopt it (--sseload-managed) and never create it again.
    try:
        run_dir = runinfo.create_run_dir(results_dir, args.run_id, scenario.name)
    except runinfo.RunDirError as err:
        raise CliError(str(err)) from None
    return RunSettings(users, spawn_rate, run_time, args.workers, run_dir.name, results_dir)


def _run_scenario(args: argparse.Namespace) -> Scenario:
    """The scenario file; without one, -H's service judged by its clean end, or the embedded default."""
    if args.scenario:
        args.scenario = str(resolve_scenario(args.scenario))  # a ready scenario's name: its packaged file
        scenario = load_scenario(args.scenario)
    elif args.host:
        scenario = for_host(args.host)
    else:
        scenario = default_scenario()
    apply_request_flags(scenario, args)
    return scenario


def _request_flags(args: argparse.Namespace) -> list[str]:
    """The one-off request flags, passed on to Locust as given."""
    out: list[str] = []
    for flag, value in (("--path", args.path), ("--method", args.method), ("--body", args.body),
                        ("--body-file", args.body_file)):
        if value is not None:
            out += [flag, value]
    for header in args.header or ():
        out += ["--header", header]
    return out


def _remember_secrets(scenario: Scenario, host: str | None) -> None:
    """What this process prints (the summary, errors) masks the run's credentials too (sseload.record.redact)."""
    req = scenario.request
    redact.remember_request(req.headers, host or req.url, req.secret_headers)
    with contextlib.suppress(ScenarioError):  # a ${VAR} not set: the run's process says so
        redact.remember_request(request_headers(req))


def _run_env(scenario: Scenario) -> dict[str, str]:
    """The environment of the run's processes: the variables its secrets come from ([auth] and
    ``${VAR}``) without the trailing line end a value read from a file keeps, removed here and said
    here once (scenario.from_env), not by every Locust process. A line break left inside: exit 2."""
    from sseload.auth.schemes import secret_vars

    env = dict(os.environ)
    for var in sorted({*secret_vars(scenario.auth), *env_vars_used(scenario)}):
        if env.get(var):
            env[var] = from_env(var, env[var])
    return env


def cmd_run(args: argparse.Namespace) -> int:
    if args.prometheus:
        from sseload.views.prometheus import parse_address

        try:
            parse_address(args.prometheus)
        except ValueError as err:
            raise CliError(str(err)) from None
    scenario = _run_scenario(args)
    _remember_secrets(scenario, args.host)
    env = _run_env(scenario)
    settings = run_settings(args, scenario)
    users, spawn_rate, run_time, run_id = settings.users, settings.spawn_rate, settings.run_time, settings.run_id
    results_dir, run_dir = settings.results_dir, settings.run_dir
    env.setdefault("PYTHONUNBUFFERED", "1")
    host = args.host
    target = None
    with tempfile.TemporaryDirectory(prefix="sseload-") as tmp:
        if not host and not scenario.request.url:
            _embedded_credentials(scenario, env)
            target = EmbeddedTarget(scenario, env, Path(tmp))
            host = target.url
            print(f"sseload: reference target at {host}", flush=True)
        stop_timeout = math.ceil(scenario.gateway.limit_s + scenario.stream.grace_s)  # whole seconds
        if scenario.stream.reconnect:  # a feed never ends by itself: its open connection is cancelled at the stop
            stop_timeout = 0
        shaped = scenario.load.shape != "constant"
        locustfile = SHAPE_LOCUSTFILE if shaped else LOCUSTFILE
        common = [sys.executable, "-m", "locust", "-f", str(locustfile), "--results-dir", str(results_dir),
                  "--run-id", run_id, "--loglevel", args.loglevel]
        if host:
            common += ["-H", host]
        if args.scenario:
            common += ["--scenario", args.scenario]
        if args.insecure:
            common.append("--insecure")
        if target is not None:
            common.append("--sseload-embedded")
        common += ["--sseload-orphan-grace-s", str(stop_timeout + ORPHAN_GRACE_S), "--sseload-managed"]
        common += _request_flags(args)
        aggregator = []  # what only the process that aggregates (local, or the master) takes
        if args.prometheus:
            aggregator += ["--sseload-prometheus", args.prometheus]
        # One summary at the end, sseload's: Locust's own tables go to locust.json (and the CSVs) instead.
        cmd = common + ["--headless", "-t", str(run_time), "--stop-timeout", str(stop_timeout), "--only-summary",
                        "--sseload-progress", "--json-file", str(run_dir / "locust"), *aggregator]
        if not shaped:  # a shape sets the user count itself, from the scenario
            cmd += ["-u", str(users), "-r", str(spawn_rate)]
        cmd += ["--csv", str(run_dir / "locust")]  # Locust's own stats, next to ours
        workers: list[subprocess.Popen] = []
        if settings.workers:
            port = _free_port()
            cmd += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                    "--expect-workers", str(settings.workers)]
            run_s = str(parse_seconds(run_time))  # workers get no -t: the open model's schedule ends here
            # a new run key for this run's master and workers (sseload.record.runkey): in their
            # environment only, never on a command line or in a file
            env[RUN_KEY_ENV] = secrets.token_hex(32)
            workers = [subprocess.Popen(common + ["--worker", "--master-host", "127.0.0.1", "--master-port",
                                                  str(port), "--sseload-run-s", run_s], env=env, **_CHILD)
                       for _ in range(settings.workers)]
        interrupted = None
        signals_seen = 0
        proc = subprocess.Popen(cmd, env=env, **_CHILD)

        def forward(signum, _frame):
            nonlocal interrupted, signals_seen
            signals_seen += 1
            if signals_seen == 1:
                interrupted = signal.Signals(signum).name
                print("sseload: stopping: open streams may finish, then results are written "
                      "(Ctrl-C twice more abandons the run)", file=sys.stderr, flush=True)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)
            elif signals_seen >= 3:
                print("sseload: abandoning the run; results may be incomplete", file=sys.stderr, flush=True)
                for child in [proc, *workers]:
                    if child.poll() is None:
                        child.kill()

        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        # Locust stops by itself at its run time plus the stop timeout; past that and a grace it is stuck
        hard_stop = time.monotonic() + parse_seconds(run_time) + stop_timeout + STARTUP_S + ORPHAN_GRACE_S
        try:
            code = _wait_or_stop(proc, hard_stop)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            _stop_all(workers, grace_s=2)
            if target is not None:
                target.stop()
    from sseload.views.report import finish as report_finish

    if signals_seen >= 3:  # abandoned: the children were killed; say what is there, exit as for the signal
        try:
            report_finish(run_dir, scenario, write_report=False)
        except Exception as err:  # whatever the cut files say, the exit code is the signal's
            print(f"sseload: the abandoned run cannot be read: {err}", file=sys.stderr)
        return 128 + signal.Signals[interrupted].value
    if code == 2 and not (run_dir / "run.json").exists():
        return 2  # the locustfile already said what is wrong
    if interrupted:  # names the signal; explains Locust's generic "stopped by a signal"
        runinfo.add_partial_reason(run_dir, runinfo.INTERRUPTED, f"interrupted by {interrupted}",
                                   replaces=(runinfo.SIGNAL,))
    if not (run_dir / "streams.parquet").exists():
        print(f"sseload: the run recorded nothing (locust exited with {code}); see the output above",
              file=sys.stderr)
        return 3
    result = report_finish(run_dir, scenario, write_report=not args.no_report, stopped_early=code == 2)
    if interrupted:  # the report is written, but an interrupted run never passes
        return 128 + signal.Signals[interrupted].value
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_or_stop(proc: subprocess.Popen, hard_stop: float, term_grace_s: float = 10.0) -> int:
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


def _stop_all(procs: list[subprocess.Popen], grace_s: float) -> None:
    """Stop the workers once the master has gone.

    Nothing a worker sends can arrive after that, and the master has already waited for each
    one's last batch. Locust's worker handles messages one at a time and, after a `stop`,
    sleeps out the whole stop timeout before it reads the master's `quit`: waiting for it cost
    15 s at the end of every run with workers. So: a short grace, then SIGTERM (a worker then
    runs its own orderly shutdown), then SIGKILL."""
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


# --- other commands ---

def cmd_serve(argv: list[str]) -> int:
    from sseload.target.__main__ import main as serve_main

    return serve_main(argv)


def cmd_check(args: argparse.Namespace) -> int:
    from sseload.views import results, thresholds

    run = results.load(args.run_dir)
    scenario = load_scenario(args.scenario) if args.scenario else None
    limits = scenario.thresholds if scenario else run.info.get("scenario", {}).get("thresholds", {})
    if not limits:
        raise CliError(f"{args.run_dir}: no thresholds to check; give --scenario with a [thresholds] table")
    summary = results.summarise(run)
    verdicts = thresholds.evaluate(summary, limits)
    thresholds.write_junit(verdicts, Path(args.junit or Path(args.run_dir) / "thresholds.xml"), summary["run_id"])
    print(thresholds.table(verdicts))
    return 0 if all(v.passed for v in verdicts) else 1


def cmd_report(args: argparse.Namespace) -> int:
    from sseload.views import report, results

    run = results.load(args.run_dir)
    summary = results.summarise(run)
    for missing in summary["missing"]:
        print(f"sseload: warning: {missing}", file=sys.stderr)
    paths = report.write_all(run, summary)
    for p in paths:
        print(p)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sseload.views.compare import compare

    paths, regressions, differ = compare(Path(args.run_a), Path(args.run_b),
                                         Path(args.out) if args.out else None, tolerance=args.tolerance)
    if differ:
        print("sseload: warning: the runs differ in their settings (" + "; ".join(differ) + "): a change may come "
              "from that, not from the service", file=sys.stderr)
    for p in paths:
        print(p)
    if regressions:
        print("regressions: " + ", ".join(regressions))
        return 1
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    """The ready scenarios (shipped with sseload), or a folder's: name and description."""
    files = sorted(Path(args.dir).glob("*.toml")) if args.dir else ready_scenarios()
    if not files:
        raise CliError(f"no scenarios in {args.dir}/; give the folder with --dir")
    names = [str(f) if args.dir else f.stem for f in files]
    width = max(len(n) for n in names)
    for name, f in zip(names, files, strict=True):
        try:
            description = load_scenario(f).description
        except ScenarioError as err:
            description = f"INVALID: {err}"
        print(f"{name:<{width}}  {description}")
    if not args.dir:
        print(f"\nrun one by name: sseload run NAME (e.g. sseload run {files[0].stem}); the files are in "
              f"{files[0].parent}")
    return 0


def cmd_locustfile(args: argparse.Namespace) -> int:
    """The packaged locustfile's path, for plain Locust: locust -f "$(sseload locustfile)" --scenario NAME."""
    print(SHAPE_LOCUSTFILE if args.shape else LOCUSTFILE)
    return 0


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's lines (the exit codes table) as written."""


def _exit_codes_epilog() -> str:
    width = max(len(code) for code, _ in EXIT_CODES)
    return "exit codes:\n" + "\n".join(f"  {code:<{width}}  {meaning}" for code, meaning in EXIT_CODES)


def build_parser() -> argparse.ArgumentParser:
    """Every option's help ends with its default, written out: None and False mean nothing to a reader."""
    defaults = Load()
    p = argparse.ArgumentParser(prog="sseload", description=__doc__.splitlines()[0].replace("``", ""),
                                epilog=_exit_codes_epilog(), formatter_class=_HelpFormatter)
    p.add_argument("--version", action="version", version=f"sseload {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def add_parser(name: str, help_text: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter, **kwargs)

    run = add_parser("run", "run a load test (no scenario: the embedded default)", epilog=_exit_codes_epilog())
    run.add_argument("scenario", nargs="?",
                     help="scenario TOML file (default: none, the embedded reference target)")
    run.add_argument("-H", "--host",
                     help="target base URL (default: the scenario's [request] url, else the embedded target)")
    run.add_argument("-u", "--users", type=int,
                     help=f"concurrent users, i.e. streams (default: the scenario's [load] users, {defaults.users})")
    run.add_argument("-r", "--spawn-rate", type=float,
                     help=f"users started per second (default: [load] spawn_rate, {defaults.spawn_rate:g})")
    run.add_argument("-t", "--run-time",
                     help=f"how long to run, e.g. 30s, 5m, 1h30m (default: [load] run_time, {defaults.run_time})")
    run.add_argument("--results-dir", default="results", help="where run folders go (default: %(default)s)")
    run.add_argument("--run-id", help="the run's folder name, refused if that folder exists "
                                      "(default: DATE-TIME-SCENARIO, e.g. 20250101-120000-embedded, -2 for a "
                                      "second run in the same second)")
    run.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (default: verify)")
    run.add_argument("--workers", type=int, default=0,
                     help=f"Locust worker processes on this machine, one master collects their records; at most "
                          f"{WORKERS_PER_CORE} per core (default: %(default)s, no workers)")
    run.add_argument("--no-report", action="store_true",
                     help="skip report.html and the summary files (default: write them)")
    run.add_argument("--prometheus", metavar="[HOST:]PORT",
                     help="serve live metrics for Prometheus at http://HOST:PORT/metrics, host 127.0.0.1 unless given "
                          "(default: none)")
    run.add_argument("--loglevel", default="WARNING", help="Locust's log level (default: %(default)s)")
    add_request_flags(run.add_argument_group("the request (override the scenario's)"))
    run.set_defaults(func=cmd_run)
    add_parser("serve", "run the reference target (its options: sseload serve --help)", add_help=False)
    check = add_parser("check", "judge a run against thresholds (exit 1 on failure)")
    check.add_argument("run_dir", help="a run's folder, e.g. results/RUN_ID")
    check.add_argument("--scenario", help="take thresholds from this scenario (default: the run's own)")
    check.add_argument("--junit", help="JUnit XML path (default: RUN_DIR/thresholds.xml)")
    check.set_defaults(func=cmd_check)
    rep = add_parser("report", "write report.html, summary.md and summary.json for a run")
    rep.add_argument("run_dir", help="a run's folder, e.g. results/RUN_ID")
    rep.set_defaults(func=cmd_report)
    cmp_ = add_parser("compare", "compare two runs; exit 1 when B regressed")
    cmp_.add_argument("run_a", help="the baseline run's folder")
    cmp_.add_argument("run_b", help="the run judged against it")
    cmp_.add_argument("--out", help="folder for compare.html / compare.md (default: RUN_B)")
    cmp_.add_argument("--tolerance", type=float, default=0.10,
                      help="relative change flagged as a regression (default: %(default)s)")
    cmp_.set_defaults(func=cmd_compare)
    sc = add_parser("scenarios", "list the ready scenarios (run one with: sseload run NAME)")
    sc.add_argument("--dir", default=None, help="list a folder of scenario TOML files instead (default: the ready "
                                                "scenarios shipped with sseload)")
    sc.set_defaults(func=cmd_scenarios)
    lf = add_parser("locustfile", "print the path of sseload's locustfile, for locust -f")
    lf.add_argument("--shape", action="store_true", help="the one for scenarios with a [load] shape (default: off)")
    lf.set_defaults(func=cmd_locustfile)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return cmd_serve(argv[1:])
    args = build_parser().parse_args(argv)
    from sseload.views.results import ResultsError

    try:
        return args.func(args)
    except (CliError, ScenarioError, ResultsError) as err:
        print(f"sseload: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

