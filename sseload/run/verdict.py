"""The run's verdict and sseload's exit codes: the one module that decides either.

Every command that ends in a verdict gets it here, from the run's own files (run.json and the
streams), so ``sseload run``, plain ``locust -f --headless`` and ``sseload check`` on the same run
can never disagree: no stream succeeded, a lost worker, a run that stopped itself early, a signal
and the thresholds are all read back from what the run wrote. Importing this module imports
neither Locust nor gevent nor pandas (``sseload --help`` shows :data:`EXIT_CODES`).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sseload.protocol.outcomes import SUCCEEDED
from sseload.record.metrics import SCHEDULE_LAG
from sseload.run import runinfo
from sseload.run.room import DiskFull
from sseload.views.thresholds import Verdict, evaluate, table, write_junit

PASSED = 0
FAILED = 1  # a threshold failed, no stream succeeded, or a worker was lost
BAD_INPUT = 2  # the scenario, a flag or the environment; also a run that stopped itself early (a broken setup)
NOTHING_RECORDED = 3
SIGNALLED = 128  # plus the signal's number: stopped by it (130: Ctrl-C)

#: The codes as ``sseload run --help`` lists them.
EXIT_CODES = (
    (str(PASSED), "the run passed"),
    (str(FAILED), "a threshold failed, no stream succeeded, or a worker was lost"),
    (str(BAD_INPUT), "bad input: scenario, flags or environment (a full disk too), or a setup so broken the run "
                     "stopped early"),
    (str(NOTHING_RECORDED), "the run recorded nothing (Locust or the target failed)"),
    (f"{SIGNALLED}+N", "stopped by signal N (130: Ctrl-C); the results written so far are kept"),
)
#: The codes as ``sseload search --help`` lists them (sseload.run.search; the same numbers as a run's).
SEARCH_EXIT_CODES = (
    (str(PASSED), "the capacity found is at least [search] require"),
    (str(FAILED), "the capacity found is below require, or not even [search] min held"),
    (str(BAD_INPUT), "bad input: scenario, [search] table, flags or environment, or a first point so broken it "
                     "stopped early"),
    (str(NOTHING_RECORDED), "a point recorded nothing (Locust or the target failed); the search stops there"),
    (f"{SIGNALLED}+N", "stopped by signal N (130: Ctrl-C); search.json keeps the points so far"),
)
#: The partial reasons of a run that stopped itself: its first streams said the setup is broken, or its disk filled.
STOPPED_EARLY = (runinfo.AUTH_STOP, runinfo.FAILURE_STORM, runinfo.DISK_FULL)


class BadInput(Exception):
    """Something the user gave that cannot be used; the message is one sentence (exit :data:`BAD_INPUT`)."""


def signal_code(name: str) -> int:
    """The exit code of a run stopped by signal ``name`` (``SIGINT``: 130)."""
    return SIGNALLED + signal.Signals[name].value


def search_code(capacity: float | None, require: float) -> int:
    """The exit code of a search that ran to its end (``sseload search``): whether the capacity it
    found, the highest load that held (None: not even the least), reaches ``require``."""
    if capacity is None or capacity < require:
        return FAILED
    return PASSED


@dataclass
class RunVerdict:
    """The run's verdict, the one every output leads with: whether it passed, why not, what to know."""

    thresholds: list[Verdict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # why the run fails, in sentences (empty: it passed)
    warnings: list[str] = field(default_factory=list)  # what a reader must know before trusting the numbers
    stopped_early: bool = False  # the run stopped itself: its first streams said the setup is broken
    interrupted_by: str | None = None  # the signal `sseload run` forwarded to stop it (SIGINT), if one did
    recorded: bool = True  # a stream was recorded at all
    # files of the run that could not be written once it was over (thresholds.xml, Locust's CSVs; the
    # report where its disk is full), each said in one sentence (sseload.run.room): the environment's
    unwritten: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.recorded and not self.failures

    @property
    def exit_code(self) -> int:
        """Nothing recorded (3) before a signal (128+N) before stopping early or a full disk (2) before
        any failure (1)."""
        if not self.recorded:
            return NOTHING_RECORDED
        if self.interrupted_by:
            return signal_code(self.interrupted_by)
        if self.stopped_early or self.unwritten:
            return BAD_INPUT
        return FAILED if self.failures else PASSED

    def to_dict(self) -> dict:
        return {"passed": self.passed, "failures": self.failures, "warnings": self.warnings,
                "thresholds": [{"name": v.name, "limit": v.limit, "actual": v.actual, "passed": v.passed,
                                "rule": v.rule} for v in self.thresholds]}


def judge(summary: Mapping, info: Mapping, limits: Mapping[str, float]) -> RunVerdict:
    """The run's verdict from its summary (sseload.views.results.summarise), its run.json and the thresholds."""
    verdicts = evaluate(summary, limits) if limits else []
    failures = [f"threshold {v.name}: {'n/a' if v.actual is None else f'{v.actual:.4g}'} is not {v.rule} {v.limit:g}"
                for v in verdicts if not v.passed]
    if summary["streams"] and not any(summary["outcomes"].get(o) for o in SUCCEEDED):
        failures.append(f"no stream succeeded ({summary['streams']} streams)")
    lost = info.get("lost_workers") or []
    if lost:
        failures.append(runinfo.lost_workers_text(lost))
    reasons = info.get("partial_reasons") or []
    stops = [r["text"] for r in reasons if r.get("code") in STOPPED_EARLY]
    failures += stops
    interrupted = info.get("interrupted_by")
    if interrupted:
        failures.append(f"interrupted by {interrupted} before its run time ended")
    warnings = []
    if summary.get("error_rate"):
        warnings.append(f"{summary['error_rate']:.1%} of streams ended in an error")
    if summary.get("cutoff_rate"):
        warnings.append(f"{summary['cutoff_rate']:.1%} of streams were cut off at the gateway's limit")
    health = summary.get("health") or {}
    if health.get("skewed"):
        warnings.append("measurement may be skewed: " + "; ".join(health.get("skew_reasons", [])) + " (add workers)")
    if summary.get("buffered_streams"):
        warnings.append(f"{summary['buffered_streams']} streams arrived all at once: a buffering proxy or server")
    if summary.get("partial") and not stops:
        warnings.append(f"partial run: {summary.get('partial_reason')}")
    warnings += summary.get("missing") or []
    trace = summary.get("trace") or {}
    if trace and not trace["kept"]:
        warnings.append(f"the trace was not kept: {trace['late_streams']} of {trace['streams']} requests started more "
                        f"than {trace['late_ms']:g} ms after their time ({SCHEDULE_LAG.label} p99 "
                        f"{trace['schedule_lag_p99_ms']:.1f} ms); add users or workers")
    scraped = info.get("server_metrics") or {}
    if scraped.get("error"):  # never a failure: the service's own metrics only explain the run's numbers
        warnings.append(f"server metrics at {scraped.get('url')}: {scraped['error']} ({scraped.get('failed_scrapes')} "
                        f"scrapes failed, {scraped.get('scrapes')} kept)")
    return RunVerdict(verdicts, failures, warnings, stopped_early=bool(stops), interrupted_by=interrupted,
                      recorded=bool(summary["streams"]))


def recorded_anything(run_dir: Path) -> bool:
    """A streams file of the run exists (whole, or cut off while it was written)."""
    from sseload.record.records import OPEN_SHARD_SUFFIX

    return any(run_dir.glob("streams*.parquet")) or any(run_dir.glob(f"streams*{OPEN_SHARD_SUFFIX}"))


def limits_of(info: Mapping, scenario=None) -> dict[str, float]:
    """The thresholds a run is judged by: the scenario's given, else those it ran with (run.json)."""
    if scenario is not None:
        return dict(scenario.thresholds)
    return dict((info.get("scenario") or {}).get("thresholds") or {})


def of_run(run_dir: Path, scenario=None):
    """(verdict, run, summary) of a run's folder; run and summary are None when it recorded nothing.

    A folder that is no run is sseload.views.results.ResultsError (the caller's exit 2)."""
    from sseload.views import results

    run_dir = Path(run_dir)
    if runinfo.is_run_dir(run_dir) and not recorded_anything(run_dir):
        return RunVerdict(failures=["no stream was recorded"], recorded=False), None, None
    run = results.load(run_dir)
    summary = results.summarise(run)
    return judge(summary, run.info, limits_of(run.info, scenario)), run, summary


def say(verdict: RunVerdict, junit: Path, suite: str) -> None:
    """How every verdict ends on the console, `sseload run`'s and `sseload check`'s alike: the
    thresholds' table (and ``junit``, thresholds.xml) when the run has thresholds, then each other
    reason it fails, one sentence each, then each file of the run that could not be written
    (``unwritten``, thresholds.xml among them: exit code 2)."""
    if verdict.thresholds:
        try:
            write_junit(verdict.thresholds, junit, suite)
        except OSError as err:  # a full disk, or (sseload check --junit) a folder that is not there
            verdict.unwritten.append(str(err) if isinstance(err, DiskFull) else
                                     f"{junit} could not be written ({err.strerror or err})")
        print(table(verdict.thresholds))
    for failure in verdict.failures:
        if not failure.startswith("threshold "):  # the table shows those
            print(f"sseload: {failure}: the run fails", file=sys.stderr)
    for text in verdict.unwritten:
        print(f"sseload: {text}", file=sys.stderr)
