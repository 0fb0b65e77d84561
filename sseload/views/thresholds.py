"""Pass/fail verdicts from a scenario's [thresholds] table, for humans and for CI (JUnit XML).

Which metric and stat a name limits, and which way, is the metric table's (sseload.record.metrics.THRESHOLDS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from sseload.protocol.outcomes import SUCCEEDED
from sseload.record.metrics import THRESHOLDS


@dataclass(frozen=True)
class Verdict:
    name: str
    limit: float
    actual: float | None
    passed: bool
    rule: str  # "<=" or ">="


def evaluate(summary: Mapping, limits: Mapping[str, float]) -> list[Verdict]:
    """Judge each ``[thresholds]`` entry by the metric table (a name it lacks is a KeyError)."""
    verdicts = []
    for name, limit in limits.items():
        threshold = THRESHOLDS[name]
        actual = threshold.actual(summary)
        verdicts.append(Verdict(name, limit, actual, threshold.passes(actual, limit), threshold.rule))
    return verdicts


@dataclass
class RunVerdict:
    """The run's verdict, the one every output leads with: whether it passed, why not, what to know."""

    thresholds: list[Verdict]
    failures: list[str]  # why the run fails, in sentences (empty: it passed)
    warnings: list[str]  # what a reader must know before trusting the numbers
    stopped_early: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        """0 passed; 1 a threshold failed, nothing succeeded or a worker was lost; 2 stopped early (bad setup)."""
        return 2 if self.stopped_early else (1 if self.failures else 0)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "failures": self.failures, "warnings": self.warnings,
                "thresholds": [{"name": v.name, "limit": v.limit, "actual": v.actual, "passed": v.passed,
                                "rule": v.rule} for v in self.thresholds]}


def judge(summary: Mapping, info: Mapping, limits: Mapping[str, float], stopped_early: bool = False) -> RunVerdict:
    """The run's verdict from its summary, its run.json and the scenario's thresholds."""
    verdicts = evaluate(summary, limits) if limits else []
    failures = [f"threshold {v.name}: {'n/a' if v.actual is None else f'{v.actual:.4g}'} is not {v.rule} {v.limit:g}"
                for v in verdicts if not v.passed]
    if summary["streams"] and not any(summary["outcomes"].get(o) for o in SUCCEEDED):
        failures.append(f"no stream succeeded ({summary['streams']} streams)")
    lost = info.get("lost_workers") or []
    if lost:
        failures.append(f"{len(lost)} worker(s) stopped without their final report ({', '.join(lost)}): the "
                        "streams they had open or unsent are missing")
    if stopped_early:
        failures.append(summary.get("partial_reason") or "stopped early")
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
    if summary.get("partial") and not stopped_early:
        warnings.append(f"partial run: {summary.get('partial_reason')}")
    warnings += summary.get("missing") or []
    return RunVerdict(verdicts, failures, warnings, stopped_early)


def table(verdicts: list[Verdict]) -> str:
    if not verdicts:
        return "no thresholds set (add a [thresholds] table to the scenario)"
    width = max(20, *(len(v.name) for v in verdicts))  # ttfe_from_schedule_p99_ms is 25
    lines = [f"{'threshold':<{width}} {'limit':>12} {'actual':>12}  result"]
    for v in verdicts:
        actual = "n/a" if v.actual is None else f"{v.actual:.4g}"
        lines.append(f"{v.name:<{width}} {v.rule}{v.limit:>10.4g} {actual:>12}  {'PASS' if v.passed else 'FAIL'}")
    return "\n".join(lines)


def write_junit(verdicts: list[Verdict], path: Path, suite: str) -> None:
    failures = sum(not v.passed for v in verdicts)
    cases = []
    for v in verdicts:
        actual = "n/a" if v.actual is None else f"{v.actual:.6g}"
        case = f'  <testcase classname={quoteattr("sseload." + suite)} name={quoteattr(v.name)} time="0">'
        if not v.passed:
            message = f"{v.name}: {actual} is not {v.rule} {v.limit:g}"
            case += f"\n    <failure message={quoteattr(message)}>{escape(message)}</failure>\n  "
        cases.append(case + "</testcase>")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name={quoteattr("sseload thresholds: " + suite)} tests="{len(verdicts)}" '
        f'failures="{failures}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n"
    )
    path.write_text(xml)
