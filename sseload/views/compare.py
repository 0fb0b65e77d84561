"""`sseload compare A B`: did B get worse than A, by more than the tolerance and more than noise?

Two runs of the same settings never give the same p99: a percentile of a few hundred streams moves
by tens of percent from run to run. So a change is judged only where

- both runs have the samples the statistic needs (:func:`needed`: ten beyond the percentile, so a
  p99 needs 1,000 samples, a p50 twenty), and otherwise it is reported as "too few samples";
- the change is past the tolerance (and past the metric's noise floor, for rates near zero), and
- the bootstrap confidence interval of the difference (B - A) lies wholly on the worse side: both
  runs resampled by stream (a stream's events move together: they are not independent), RESAMPLES
  times, CONFIDENCE two-sided. A change past the tolerance whose interval holds zero is "within noise".

Run-level rates (streams/s, events/s, tokens/s, goodput) have one value per run and no samples to
resample: they are judged by the tolerance alone, and the table says so.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sseload.record.metrics import METRICS, Metric
from sseload.views import results

#: What compare judges: (metric, stat) pairs from the metric table, its direction the metric's.
COMPARED: tuple[tuple[Metric, str | None], ...] = tuple((m, stat) for m in METRICS for stat in m.compared_stats)
RESAMPLES = 400
CONFIDENCE = 0.95
MIN_STREAMS = 20  # for a share of streams (error rate)
REGRESSION, NOISE, TOO_FEW = "REGRESSION", "within noise", "too few samples"


@dataclass
class Row:
    name: str
    a: float | None
    b: float | None
    change: float | None = None  # (B - A) / |A|
    low: float | None = None  # the CI of B - A, in the metric's unit
    high: float | None = None
    verdict: str = ""
    why: str = ""


def needed(stat: str | None) -> int:
    """Samples a statistic needs in each run to be judged: ten beyond a percentile (p99: 1,000)."""
    if stat and stat.startswith("p"):
        q = float(stat[1:]) / 100
        return math.ceil(10 / (1 - q)) if q < 1 else 10**9
    return MIN_STREAMS


def _weighted_percentile(sorted_values: np.ndarray, weights: np.ndarray, q: float) -> float:
    cum = np.cumsum(weights)
    return float(sorted_values[min(int(np.searchsorted(cum, q * cum[-1])), sorted_values.size - 1)])


class _Resampler:
    """One run's samples of one metric, resampled by stream: each resample draws the run's streams
    with replacement, and a sample counts as often as its stream was drawn."""

    def __init__(self, stream_ids: np.ndarray, values: np.ndarray, rng: np.random.Generator) -> None:
        order = np.argsort(values, kind="stable")
        self.values = values[order]
        streams, self.stream_of = np.unique(stream_ids[order], return_inverse=True)
        self.n_streams = streams.size
        self.rng = rng

    def stats(self, stat: str) -> np.ndarray:
        q = float(stat[1:]) / 100
        out = np.empty(RESAMPLES)
        for i in range(RESAMPLES):
            drawn = np.bincount(self.rng.integers(0, self.n_streams, self.n_streams), minlength=self.n_streams)
            out[i] = _weighted_percentile(self.values, drawn[self.stream_of], q)
        return out


def _share_resamples(hits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A share of streams (error rate), resampled: binomial draws of the same size."""
    n = hits.size
    return rng.binomial(n, hits.mean(), RESAMPLES) / n if n else np.zeros(RESAMPLES)


def _bootstrap(run_a: results.Run, run_b: results.Run, metric: Metric, stat: str | None,
               rng: np.random.Generator) -> tuple[np.ndarray, int, int] | None:
    """Resampled differences B - A, and each run's sample size; None for a run-level rate."""
    if metric.key in results.SAMPLED and stat:
        got_a, got_b = results.samples(run_a, metric.key), results.samples(run_b, metric.key)
        if got_a is None or got_b is None:
            return None
        n_a, n_b = got_a[1].size, got_b[1].size
        if min(n_a, n_b) < needed(stat):
            return np.empty(0), n_a, n_b
        return _Resampler(*got_b, rng).stats(stat) - _Resampler(*got_a, rng).stats(stat), n_a, n_b
    if metric.key in results.SHARES:
        hits_a = run_a.streams["outcome"].isin(results.SHARES[metric.key]).to_numpy()
        hits_b = run_b.streams["outcome"].isin(results.SHARES[metric.key]).to_numpy()
        if min(hits_a.size, hits_b.size) < MIN_STREAMS:
            return np.empty(0), hits_a.size, hits_b.size
        return _share_resamples(hits_b, rng) - _share_resamples(hits_a, rng), hits_a.size, hits_b.size
    return None


def judge(run_a: results.Run, run_b: results.Run, tolerance: float = 0.10, seed: int = 0) -> list[Row]:
    """Every compared metric's row: A, B, change, the CI of the difference and the verdict."""
    a, b = results.summarise(run_a), results.summarise(run_b)
    rng = np.random.default_rng(seed)  # the same two runs give the same table
    rows = []
    for metric, stat in COMPARED:
        va, vb = metric.value(a, stat), metric.value(b, stat)
        row = Row(f"{metric.key} {stat}" if stat else metric.key, va, vb)
        rows.append(row)
        if va is None or vb is None:
            continue
        delta = vb - va
        row.change = delta / abs(va) if va else (0.0 if vb == 0 else math.inf)
        worse = row.change > tolerance if metric.higher_is_worse else row.change < -tolerance
        if abs(delta) < metric.noise_floor:  # rates near zero: a relative change of a tiny number is noise
            worse = False
        boot = _bootstrap(run_a, run_b, metric, stat, rng)
        if boot is None:
            row.why = "one value per run: judged by the tolerance alone"
            row.verdict = REGRESSION if worse else ""
            continue
        diffs, n_a, n_b = boot
        if not diffs.size:
            row.verdict = TOO_FEW
            row.why = f"{n_a} and {n_b} samples; {stat or 'a share'} needs {needed(stat)} in each"
            continue
        tail = (1 - CONFIDENCE) / 2 * 100
        row.low, row.high = (float(v) for v in np.percentile(diffs, [tail, 100 - tail]))
        beyond = row.low > 0 if metric.higher_is_worse else row.high < 0
        if worse:
            row.verdict = REGRESSION if beyond else NOISE
    return rows


def _interval(row: Row) -> str:
    return "-" if row.low is None else f"[{row.low:+.3g}, {row.high:+.3g}]"


def compare(run_a: Path, run_b: Path, out: Path | None = None,
            tolerance: float = 0.10) -> tuple[list[Path], list[str], list[str]]:
    """compare.md and compare.html in ``out`` (default B's folder). Returns the files written, the
    regressions, and how the runs' settings differ (to warn of first)."""
    from sseload.views.report import CSS, _num, _table

    run_a_, run_b_ = results.load(run_a), results.load(run_b)
    rows = judge(run_a_, run_b_, tolerance)
    differ = results.differences(run_a_.info, run_b_.info)
    ids = (run_a_.info.get("run_id", run_a.name), run_b_.info.get("run_id", run_b.name))
    out = out or run_b
    out.mkdir(parents=True, exist_ok=True)
    warning = ("**The runs differ in their settings** (" + "; ".join(differ) + "): a change may come from that, "
               "not from the service.") if differ else ""
    heading = (f"sseload compare: `{ids[0]}` -> `{ids[1]}` (tolerance {tolerance:.0%}, "
               f"{CONFIDENCE:.0%} interval of B - A, {RESAMPLES} resamples by stream)")
    md = [f"### {heading}", ""]
    if warning:
        md += [warning, ""]
    headers = ["metric", "A", "B", "change", f"{CONFIDENCE:.0%} CI of B - A", "verdict"]
    table = [[r.name, _num(r.a, 3), _num(r.b, 3), "-" if r.change is None else f"{r.change:+.1%}", _interval(r),
              f"{r.verdict} ({r.why})" if r.why and r.verdict else r.verdict or r.why] for r in rows]
    md += ["| " + " | ".join(headers) + " |", "|---|---:|---:|---:|---:|---|"]
    md += ["| " + " | ".join(cells) + " |" for cells in table]
    md_path, html_path = out / "compare.md", out / "compare.html"
    md_path.write_text("\n".join(md) + "\n")
    html_path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>sseload compare</title>"
                         f"<style>{CSS}</style></head><body><h1>{html.escape(ids[0])} &rarr; "
                         f"{html.escape(ids[1])}</h1><p>{html.escape(heading.split(' (', 1)[1][:-1])}</p>"
                         + (f"<p class='warn'>{html.escape(warning.replace('**', ''))}</p>" if warning else "")
                         + f"{_table(headers, table)}</body></html>")
    return [html_path, md_path], [r.name for r in rows if r.verdict == REGRESSION], differ
