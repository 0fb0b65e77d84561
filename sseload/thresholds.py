"""Pass/fail verdicts from a scenario's [thresholds] table, for humans and for CI (JUnit XML)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr


@dataclass(frozen=True)
class Verdict:
    name: str
    limit: float
    actual: float | None
    passed: bool
    rule: str  # "<=" or ">="


def _actual(summary: dict, name: str) -> tuple[float | None, str]:
    if name.startswith(("ttfe_", "gap_", "duration_")) and name.endswith("_ms"):
        metric, stat = name[: -len("_ms")].rsplit("_", 1)
        return (summary.get(f"{metric}_ms") or {}).get(stat), "<="
    if name == "cutoff_rate_max":
        return summary["cutoff_rate"], "<="
    if name == "error_rate_max":
        return summary["error_rate"], "<="
    if name == "min_streams":
        return summary["streams"], ">="
    if name == "min_events_per_s":
        return summary["events_per_s"], ">="
    raise KeyError(name)


def evaluate(summary: dict, thresholds: dict[str, float]) -> list[Verdict]:
    verdicts = []
    for name, limit in thresholds.items():
        actual, rule = _actual(summary, name)
        if actual is None:  # nothing measured (e.g. no event at all): a threshold cannot pass on air
            passed = False
        else:
            passed = actual <= limit if rule == "<=" else actual >= limit
        verdicts.append(Verdict(name, limit, actual, passed, rule))
    return verdicts


def table(verdicts: list[Verdict]) -> str:
    if not verdicts:
        return "no thresholds set (add a [thresholds] table to the scenario)"
    lines = [f"{'threshold':<20} {'limit':>12} {'actual':>12}  result"]
    for v in verdicts:
        actual = "n/a" if v.actual is None else f"{v.actual:.4g}"
        lines.append(f"{v.name:<20} {v.rule}{v.limit:>10.4g} {actual:>12}  {'PASS' if v.passed else 'FAIL'}")
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
