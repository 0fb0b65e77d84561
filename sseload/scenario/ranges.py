"""The range of every number a scenario takes, declared once beside its field (:func:`bounded`).

A range is data: the scenario's check (sseload.scenario.load's ``validate``), the reference
target's (sseload.target.config) and the sentence a value out of it gets read it here
(:func:`range_missed`, :func:`range_text`), the flags that override a key take the key's
(sseload.run.supervisor, ``sseload serve``), and tests/test_numbers.py feeds every declared number
NaN, the infinities, -1, 0 and a huge value and holds docs/scenarios.md to the same words. A
number that is not finite is never in range: it would pass every comparison the run makes and fail
where it is used, far from the file that said it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from sseload.scenario.dist import Dist, DistError

#: The most any number of a scenario may be where its range names no other: nothing means anything
#: past it, and timers and sizes would overflow.
LARGEST = 10**12
HOUR_S, DAY_S = 3600, 86_400
MAX_RUN_S = 30 * DAY_S  # the longest run (and time into a shape) a scenario may name
MAX_USERS = 1_000_000  # users a scenario may name (and users started, streams started, per second)
MAX_BODY_SIZE_BYTES = 1 << 40  # a body size a scenario may name (one over the gateway limit is never built)


#: The forms a number may be written in as text: a time span (``30s``, counted in seconds), or a
#: distribution (``100``, ``"uniform:50:150"``, ``"lognormal:100:0.5"``: its bounds or median in
#: range), which may be left empty ("") where that means "not given".
FORMS = ("span", "dist", "dist or empty")


def number_range(low: float | None = None, high: float | None = None, *, above: bool = False, why: str = "",
                 form: str = "") -> dict[str, Any]:
    """A range: at least ``low`` (more than it, with ``above``), at most ``high`` (else :data:`LARGEST`),
    and finite always; ``why`` says what a value means (``0: never``); ``form``: one of :data:`FORMS`,
    for a number written as text."""
    assert form in ("", *FORMS), form
    return {"range": (low, LARGEST if high is None else high), "above": above, "why": why, "form": form}


def bounded(default: Any, low: float | None = None, high: float | None = None, *, above: bool = False,
            why: str = "", form: str = "") -> Any:
    """A dataclass field declared with its :func:`number_range` (for a list: each of its numbers; for a
    table: each of its values)."""
    meta = number_range(low, high, above=above, why=why, form=form)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def number_text(number: float) -> str:
    """A bound as a person reads it: ``1,000,000``, ``0.5``."""
    if float(number).is_integer() and abs(number) < 1e18:
        return f"{int(number):,}"
    return f"{number:g}"


def range_text(meta: Mapping) -> str:
    """A range in words: ``at least 0 and at most 3,600 (0: never)``."""
    low, high = meta["range"]
    text = f"at most {number_text(high)}" + (" seconds" if meta["form"] == "span" else "")
    if low is not None:
        text = f"{'more than' if meta['above'] else 'at least'} {number_text(low)} and {text}"
    return text + (f" ({meta['why']})" if meta["why"] else "")


def out_of_range(value: float, meta: Mapping) -> str | None:
    """What a number misses of its range (``must be more than 0 and at most ...``), or None when it is
    in it. NaN and the infinities never are."""
    low, high = meta["range"]
    number = float(value)
    inside = (math.isfinite(number) and number <= high
              and (low is None or (number > low if meta["above"] else number >= low)))
    return None if inside else f"must be {range_text(meta)}"


_TIMESPAN = re.compile(r"^(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$")


def parse_seconds(text: str) -> float:
    """Locust's time spans: ``90``, ``90s``, ``5m``, ``1h30m``."""
    text = str(text).strip()
    if text.isdigit():
        return float(text)
    match = _TIMESPAN.match(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a time span: {text!r}")
    h, m, sec = (int(g or 0) for g in match.groups())
    return float(h * 3600 + m * 60 + sec)


def range_missed(value: Any, meta: Mapping, whole: bool = False) -> str | None:
    """What ``value`` misses of a range (:func:`number_range`), in words, or None: a time span is
    counted in seconds, a distribution by its bounds; ``whole``: only a whole number passes. NaN, the
    infinities and what is not a number never pass."""
    if meta["form"] == "span":
        try:
            value = parse_seconds(value)
        except ValueError:
            return f"is not a time span; write e.g. 30s, 5m or 1h30m: {range_text(meta)}"
    elif meta["form"].startswith("dist"):
        if value == "" and meta["form"] == "dist or empty":
            return None
        try:
            dist = value if isinstance(value, Dist) else Dist.parse(value, "")
        except DistError:
            return ("is not a number or a distribution; write e.g. 100, 'uniform:50:150' or 'lognormal:100:0.5': "
                    + range_text(meta))
        missed = [out_of_range(bound, meta) for bound in dist.bounds()]
        return next((m.replace("must be", "must have its numbers") for m in missed if m), None)
    elif not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"should be a number {range_text(meta)}"
    elif whole and not isinstance(value, int):
        return f"should be a whole number {range_text(meta)}"
    return out_of_range(value, meta)


#: What a [thresholds] value may be: a share of streams (``error_rate_max``) from 0 to 1, any other
#: (milliseconds, counts, rates per second) from 0.
THRESHOLD_SHARE = number_range(0, 1, why="a share of streams")
THRESHOLD_LIMIT = number_range(0)


def threshold_range(name: str) -> dict[str, Any]:
    """The range of the [thresholds] value ``name`` (a name of sseload.record.metrics.THRESHOLDS)."""
    return THRESHOLD_SHARE if "_rate" in name else THRESHOLD_LIMIT
