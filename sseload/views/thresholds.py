"""Each threshold of a scenario's [thresholds] table judged, for humans and for CI (JUnit XML).

Which metric and stat a name limits, and which way, is the metric table's (sseload.record.metrics.THRESHOLDS);
the run's verdict and exit code, which these are part of, are sseload.run.verdict's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from sseload.record.metrics import THRESHOLDS
from sseload.run.room import write_whole


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
    """thresholds.xml, replaced whole (a CI step never reads half of one); a full disk is
    sseload.run.room.DiskFull, in a sentence naming ``path``."""
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
    write_whole(path, xml)
