"""The statistics of ``sseload search``: how sure a point is, how many samples a percentile needs,
and what the points say the capacity is. Pure functions of counts and points: no run, no I/O, so
each rule is tested by feeding it numbers. Why these rules and how sure they make the answer:
docs/search.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sseload.record.metrics import BY_KEY

#: The normal quantile of the intervals: 95%, two-sided.
Z = 1.96
#: A percentile is read, not guessed, with this many samples beyond it (p99: 1,000 samples; p50: 20).
BEYOND_PERCENTILE = 10


def wilson(met: int, n: int, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of a share ``met / n``: unlike the plain ``p ± z·se``, it stays
    inside [0, 1] and is honest at 0 or all of ``n`` (where that one has no width at all)."""
    if n <= 0:
        return 0.0, 1.0
    p = met / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def streams_to_be_sure(share: float, z: float = Z) -> int | None:
    """The fewest streams that can show a point holds ``share`` with confidence: with every stream
    meeting the SLO, Wilson's lower bound is ``n / (n + z²)``, at least ``share`` from
    ``z² · share / (1 - share)`` (0.95: 73 streams). None for a share of 1: no count can show it."""
    if share >= 1:
        return None
    return math.ceil(z * z * share / (1 - share))


def samples_for(stat: str | None) -> int:
    """The samples a statistic needs: ``BEYOND_PERCENTILE`` beyond a percentile (p99: 1,000, p99.9:
    10,000); a scalar or a max reads what there is (1)."""
    if not stat or not stat.startswith("p"):
        return 1
    beyond = 100 - float(stat[1:])  # percent of samples past it
    return math.ceil(round(BEYOND_PERCENTILE * 100 / beyond, 6)) if beyond > 0 else 1


def too_few(counts: Mapping[str, tuple[str, int]], needs: Mapping[str, int]) -> list[str]:
    """Sentences for each threshold whose metric has fewer samples than its statistic needs.

    ``counts``: threshold name -> (metric key, samples the point has); ``needs``: name -> samples."""
    return [f"too few samples for {name} ({have:,} {BY_KEY[key].label} samples; a "
            f"{name.split('_')[-2]} needs about {needs[name]:,})"
            for name, (key, have) in counts.items() if have < needs[name]]


def judge_point(streams: int, met: int, share: float, failures: Sequence[str], thin: Sequence[str]) -> dict:
    """Whether a point holds, and how sure that is.

    It holds when the share of its streams meeting the SLO is at least ``share`` (the estimate decides),
    its run's verdict has no failure (thresholds, no stream succeeded, a lost worker) and no threshold
    lacks samples. ``sure``: the share's 95% interval lies wholly on the side decided (a failure of
    the verdict is taken as it is: sure). Too few samples is neither held nor sure."""
    low, high = wilson(met, streams)
    estimate = met / streams if streams else 0.0
    reasons = list(failures)
    if streams and estimate < share:
        reasons.insert(0, f"{estimate:.1%} of streams met the SLO, under {share:.0%}")
    reasons += thin
    holds = bool(streams) and not reasons
    if holds:
        sure = low >= share
    elif thin and not failures and estimate >= share:
        sure = False  # the share held; the percentiles cannot say yet
    else:
        sure = bool(failures) or high < share
    return {"share_met": estimate, "share_interval": [low, high], "holds": holds, "sure": sure, "reasons": reasons}


def answer(points: Sequence[Mapping], whole: bool) -> tuple[float | None, list[float | None]]:
    """The capacity and its interval from the points run (``load``, ``holds``, ``sure``).

    The capacity is the highest load that held below the lowest that failed. The interval's low end
    is the highest load at or below it whose point held surely; its high end the lowest load above
    it whose point failed surely, less one user (``whole``) or as a bound (rate). None: no such
    point (no sure hold: it may lie below the least load; no sure failure: above the most)."""
    failed = [p["load"] for p in points if not p["holds"]]
    first_failed = min(failed, default=math.inf)
    held = [p["load"] for p in points if p["holds"] and p["load"] < first_failed]
    capacity = max(held, default=None)
    if capacity is None:
        low = None
        sure_failed = [p["load"] for p in points if not p["holds"] and p["sure"]]
    else:
        low = max((p["load"] for p in points if p["holds"] and p["sure"] and p["load"] <= capacity), default=None)
        sure_failed = [p["load"] for p in points if not p["holds"] and p["sure"] and p["load"] > capacity]
    high = min(sure_failed, default=None)
    if high is not None and whole:
        high -= 1
    return capacity, [low, high]


def next_load(points: Sequence[Mapping], low: float, high: float, whole: bool, resolution: float) -> tuple[
        float | None, str]:
    """The next load to try, or None and why the search stops.

    Bracket: from ``low``, double while points hold, up to ``high``. Then narrow: bisect between the
    highest load that held and the lowest that failed, until no whole user lies between them
    (``whole``), or their gap is at most ``resolution`` of the lower (rate)."""
    if not points:
        return low, ""
    failed = [p["load"] for p in points if not p["holds"]]
    held = [p["load"] for p in points if p["holds"] and p["load"] < min(failed, default=math.inf)]
    if not failed:
        top = max(held)
        if top >= high:
            return None, "max"
        return min(high, top * 2), ""
    if not held:
        return None, "min"
    below, above = max(held), min(failed)
    if whole:
        if above - below <= 1:
            return None, "resolution"
        return float((below + above) // 2), ""
    if above - below <= resolution * below:
        return None, "resolution"
    return (below + above) / 2, ""


#: What each way of stopping means, for the console and search.json.
STOPPED = {
    "resolution": "the highest load that held and the lowest that failed are one step apart (a user; over rate, "
                  "[search] resolution): the next step cannot change the answer",
    "max": "the most load asked for ([search] max) held: the capacity is at least that",
    "min": "the least load asked for ([search] min) failed: the capacity is below it",
    "budget": "the next point would not fit in what is left of [search] budget_s",
}
