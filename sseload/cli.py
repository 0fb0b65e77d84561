"""``sseload``: run load, serve the reference target, report, check thresholds, compare runs.

Argument parsing and thin commands; ``sseload run``'s supervisor is sseload.run.supervisor, and every
exit code comes from sseload.run.verdict (``sseload run --help`` lists them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sseload import __version__
from sseload.run import supervisor
from sseload.run import verdict as run_verdict
from sseload.run.supervisor import LOCUSTFILE, SHAPE_LOCUSTFILE, WORKERS_PER_CORE
from sseload.run.verdict import EXIT_CODES, BadInput
from sseload.scenario.flags import add_request_flags
from sseload.scenario.load import check_flag
from sseload.scenario.load import load as load_scenario
from sseload.scenario.load import ready as ready_scenarios
from sseload.scenario.model import Load, ScenarioError
from sseload.scenario.ranges import number_range


def cmd_run(args: argparse.Namespace) -> int:
    return supervisor.run(args)


def cmd_search(args: argparse.Namespace) -> int:
    from sseload.run.search import search

    return search(args)


# --- other commands ---

def cmd_serve(argv: list[str]) -> int:
    from sseload.target.__main__ import main as serve_main

    return serve_main(argv)


def cmd_check(args: argparse.Namespace) -> int:
    """The run's verdict again, from its files: the same as `sseload run` gave it (sseload.run.verdict),
    with --scenario's thresholds in place of the run's own."""
    from sseload.views import thresholds

    scenario = load_scenario(args.scenario) if args.scenario else None
    verdict, _, summary = run_verdict.of_run(Path(args.run_dir), scenario)
    if not verdict.thresholds:
        print(thresholds.table([]))
    run_id = summary["run_id"] if summary else Path(args.run_dir).name
    run_verdict.say(verdict, Path(args.junit or Path(args.run_dir) / "thresholds.xml"), run_id)
    return verdict.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    from sseload.views import report, results

    run = results.load(args.run_dir)
    summary = results.summarise(run)
    for missing in summary["missing"]:
        print(f"sseload: warning: {missing}", file=sys.stderr)
    paths = report.write_all(run, summary)
    for p in paths:
        print(p)
    return run_verdict.PASSED


def cmd_compare(args: argparse.Namespace) -> int:
    from sseload.views.compare import compare

    check_flag(args.tolerance, FLAG_RANGES["tolerance"], "--tolerance", "--tolerance 0.1")
    paths, regressions, differ = compare(Path(args.run_a), Path(args.run_b),
                                         Path(args.out) if args.out else None, tolerance=args.tolerance)
    if differ:
        print("sseload: warning: the runs differ in their settings (" + "; ".join(differ) + "): a change may come "
              "from that, not from the service", file=sys.stderr)
    for p in paths:
        print(p)
    if regressions:
        print("regressions: " + ", ".join(regressions))
        return run_verdict.FAILED
    return run_verdict.PASSED


def cmd_scenarios(args: argparse.Namespace) -> int:
    """The ready scenarios (shipped with sseload), or a folder's: name and description."""
    files = sorted(Path(args.dir).glob("*.toml")) if args.dir else ready_scenarios()
    if not files:
        raise BadInput(f"no scenarios in {args.dir}/; give the folder with --dir")
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
    return run_verdict.PASSED


def cmd_locustfile(args: argparse.Namespace) -> int:
    """The packaged locustfile's path, for plain Locust: locust -f "$(sseload locustfile)" --scenario NAME."""
    print(SHAPE_LOCUSTFILE if args.shape else LOCUSTFILE)
    return run_verdict.PASSED


#: The range of every numeric flag, by its name in the parsed arguments (tests/test_numbers.py feeds
#: each flag the values no range takes): a flag over a [load] key takes the key's own.
FLAG_RANGES = {
    **{key: Load.__dataclass_fields__[key].metadata for key in ("users", "spawn_rate", "run_time")},
    "workers": supervisor.WORKERS,
    "tolerance": number_range(0, 10, why="a relative change: 0.1 is 10%"),
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's lines (the exit codes table) as written."""


def _exit_codes_epilog(codes: tuple[tuple[str, str], ...] = EXIT_CODES) -> str:
    width = max(len(code) for code, _ in codes)
    return "exit codes:\n" + "\n".join(f"  {code:<{width}}  {meaning}" for code, meaning in codes)


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
    # the flags of `run` (those that do not apply to a search are refused by it, with the reason)
    search = add_parser("search", "find the highest load that holds: a bounded search of runs, by the scenario's "
                        "[search] table (docs/search.md)", parents=[run], conflict_handler="resolve",
                        epilog=_exit_codes_epilog(run_verdict.SEARCH_EXIT_CODES))
    search.set_defaults(func=cmd_search)
    add_parser("serve", "run the reference target (its options: sseload serve --help)", add_help=False)
    check = add_parser("check", "judge a run again from its files: its thresholds, and all else its verdict "
                                "weighs; the exit code sseload run gave it", epilog=_exit_codes_epilog())
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
    except (BadInput, ScenarioError, ResultsError) as err:
        print(f"sseload: {err}", file=sys.stderr)
        return run_verdict.BAD_INPUT
    except KeyboardInterrupt:
        return run_verdict.signal_code("SIGINT")

