"""``sseload``: run load, serve the reference target, report, check thresholds, compare runs.

Exit codes: 0 success; 1 a threshold failed; 2 bad input (scenario, flags, environment);
3 the run itself failed (Locust or the target crashed, nothing recorded).
"""

from __future__ import annotations

import argparse
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

from sseload import runinfo
from sseload.scenario import Scenario, ScenarioError, default_scenario
from sseload.scenario import load as load_scenario

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SHAPE_LOCUSTFILE = Path(__file__).with_name("locustfile_shape.py")


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

def _scenario_from(path: str | None) -> Scenario:
    return load_scenario(path) if path else default_scenario()


def cmd_run(args: argparse.Namespace) -> int:
    scenario = _scenario_from(args.scenario)
    load = scenario.load
    users = args.users if args.users is not None else load.users
    spawn_rate = args.spawn_rate if args.spawn_rate is not None else load.spawn_rate
    run_time = args.run_time or load.run_time
    run_id = args.run_id or runinfo.new_run_id(scenario.name)
    results_dir = Path(args.results_dir)
    run_dir = results_dir / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot write results to {run_dir} ({err.strerror}); "
                       "pick another --results-dir or free some space") from None
    env = dict(os.environ)
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
        cmd = common + ["--headless", "-t", str(run_time), "--stop-timeout", str(stop_timeout), "--only-summary"]
        if not shaped:  # a shape sets the user count itself, from the scenario
            cmd += ["-u", str(users), "-r", str(spawn_rate)]
        cmd += ["--csv", str(run_dir / "locust")]  # Locust's own stats, next to ours
        workers: list[subprocess.Popen] = []
        if args.workers:
            port = _free_port()
            cmd += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                    "--expect-workers", str(args.workers)]
            workers = [subprocess.Popen(common + ["--worker", "--master-host", "127.0.0.1",
                                                  "--master-port", str(port)], env=env, **_CHILD)
                       for _ in range(args.workers)]
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
        try:
            while True:
                try:
                    code = proc.wait()
                    break
                except InterruptedError:
                    continue
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            _stop_all(workers, grace_s=2)
            if target is not None:
                target.stop()
    if code == 2 and not (run_dir / "run.json").exists():
        return 2  # the locustfile already said what is wrong
    if interrupted:  # names the signal; explains Locust's generic "stopped by a signal"
        runinfo.add_partial_reason(run_dir, runinfo.INTERRUPTED, f"interrupted by {interrupted}",
                                   replaces=(runinfo.SIGNAL,))
    if not (run_dir / "streams.parquet").exists():
        print(f"sseload: the run recorded nothing (locust exited with {code}); see the output above",
              file=sys.stderr)
        return 3
    result = finish(run_dir, scenario, write_report=not args.no_report, stopped_early=code == 2)
    if interrupted:  # the report is written, but an interrupted run never passes
        return 128 + signal.Signals[interrupted].value
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def finish(run_dir: Path, scenario: Scenario | None, write_report: bool, stopped_early: bool = False) -> int:
    """Summarise a finished run, write its reports and judge its thresholds."""
    from sseload import results, thresholds
    from sseload.console import format_summary

    run = results.load(run_dir)
    summary = results.summarise(run)
    print(format_summary(summary))
    if summary["streams"] == 0:
        print(f"sseload: no stream was recorded in {run_dir}; see the messages above", file=sys.stderr)
        return 3
    if write_report:
        from sseload import report

        report.write_all(run, summary)
    limits = scenario.thresholds if scenario is not None else run.info.get("scenario", {}).get("thresholds", {})
    code = 0
    if limits:
        verdicts = thresholds.evaluate(summary, limits)
        thresholds.write_junit(verdicts, run_dir / "thresholds.xml", summary["run_id"])
        print(thresholds.table(verdicts))
        if not all(v.passed for v in verdicts):
            code = 1
    if stopped_early:
        code = max(code, 2)
    print(run_dir)
    return code


# --- other commands ---

def cmd_serve(argv: list[str]) -> int:
    from sseload.target.__main__ import main as serve_main

    return serve_main(argv)


def cmd_check(args: argparse.Namespace) -> int:
    from sseload import results, thresholds

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
    from sseload import report, results

    run = results.load(args.run_dir)
    paths = report.write_all(run, results.summarise(run))
    for p in paths:
        print(p)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sseload import report

    paths, regressions = report.compare(Path(args.run_a), Path(args.run_b), Path(args.out) if args.out else None,
                                        tolerance=args.tolerance)
    for p in paths:
        print(p)
    if regressions:
        print("regressions: " + ", ".join(regressions))
        return 1
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise CliError(f"no scenarios in {folder}/; give the folder with --dir")
    width = max(len(str(f)) for f in files)
    for f in files:
        try:
            description = load_scenario(f).description
        except ScenarioError as err:
            description = f"INVALID: {err}"
        print(f"{str(f):<{width}}  {description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sseload", description=__doc__.splitlines()[0].strip("`"))
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a load test (no scenario: the embedded default)")
    run.add_argument("scenario", nargs="?", help="scenario TOML file; none: embedded reference target")
    run.add_argument("-H", "--host", help="target base URL; none and no [request] url: the embedded target")
    run.add_argument("-u", "--users", type=int, help="concurrent users (streams)")
    run.add_argument("-r", "--spawn-rate", type=float, help="users started per second")
    run.add_argument("-t", "--run-time", help="e.g. 30s, 5m, 1h")
    run.add_argument("--results-dir", default="results")
    run.add_argument("--run-id")
    run.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    run.add_argument("--workers", type=int, default=0,
                     help="Locust worker processes on this machine (one master collects their records)")
    run.add_argument("--no-report", action="store_true", help="skip report.html / summary files")
    run.add_argument("--loglevel", default="WARNING")
    run.set_defaults(func=cmd_run)
    sub.add_parser("serve", help="run the reference target (see `sseload serve --help`)", add_help=False)
    check = sub.add_parser("check", help="judge a run against thresholds (exit 1 on failure)")
    check.add_argument("run_dir")
    check.add_argument("--scenario", help="take thresholds from this scenario instead of the run's")
    check.add_argument("--junit", help="JUnit XML path (default RUN_DIR/thresholds.xml)")
    check.set_defaults(func=cmd_check)
    rep = sub.add_parser("report", help="write report.html, summary.md and summary.json for a run")
    rep.add_argument("run_dir")
    rep.set_defaults(func=cmd_report)
    cmp_ = sub.add_parser("compare", help="compare two runs; exit 1 when B regressed")
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")
    cmp_.add_argument("--out", help="folder for compare.html / compare.md (default RUN_B)")
    cmp_.add_argument("--tolerance", type=float, default=0.10, help="relative change flagged (default 0.10)")
    cmp_.set_defaults(func=cmd_compare)
    sc = sub.add_parser("scenarios", help="list scenarios with their descriptions")
    sc.add_argument("--dir", default="scenarios")
    sc.set_defaults(func=cmd_scenarios)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return cmd_serve(argv[1:])
    args = build_parser().parse_args(argv)
    from sseload.results import ResultsError

    try:
        return args.func(args)
    except (CliError, ScenarioError, ResultsError) as err:
        print(f"sseload: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

