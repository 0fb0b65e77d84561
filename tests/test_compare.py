"""`sseload compare` is noise-aware: two runs of the same process are not a regression, a real shift
is, and a statistic without the samples it needs is not judged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sseload.record.records import EventBuffer, StreamRecord, to_tables
from sseload.views import compare, results

pytestmark = pytest.mark.unit

T0_NS = 1_700_000_000_000_000_000


def synthetic_run(seed: int, streams: int = 300, ttfe_scale: float = 1.0, gap_scale: float = 1.0,
                  events: int = 30, error_share: float = 0.0) -> results.Run:
    """Streams of one random process: lognormal TTFE around 200 ms, lognormal gaps around 20 ms."""
    rng = np.random.default_rng(seed)
    records, buf = [], EventBuffer()
    for i in range(streams):
        ttfe_ms = float(rng.lognormal(np.log(200), 0.4)) * ttfe_scale
        gaps = rng.lognormal(np.log(20), 0.6, events - 1) * gap_scale
        offsets = ttfe_ms + np.concatenate([[0.0], np.cumsum(gaps)])
        t0 = (i + 1) * 10**12
        for off in offsets:
            buf.t_ns.append(t0 + int(off * 1e6))
            buf.size.append(100)
            buf.server_ns.append(0)
        failed = rng.random() < error_share
        records.append(StreamRecord(
            stream_id=i + 1, worker=0, user=i % 20, t0_perf_ns=t0, start_ns=T0_NS + i * 50_000_000,
            scheduled_ns=0, connect_ns=-1, upload_ns=0, ttfb_ns=int(ttfe_ms * 0.9e6), ttfe_ns=int(ttfe_ms * 1e6),
            duration_ns=int(offsets[-1] * 1e6), sign_ns=0, auth_fetch_ns=0, status=200,
            content_type="text/event-stream", charset_warning=False, body_bytes=80, response_bytes=3000,
            events=events, malformed_events=0, outcome="reset" if failed else "ok", error_code="", error="",
            reused=True))
    stream_table, event_table = to_tables(records, buf)
    info = {"run_id": f"r{seed}", "scenario": {"gateway": {"limit_s": 40.0}}}
    return results.Run(Path(f"r{seed}"), info, stream_table.to_pandas(), event_table.to_pandas())


def verdicts(rows: list[compare.Row]) -> dict[str, str]:
    return {r.name: r.verdict for r in rows}


def test_runs_of_the_same_process_are_never_a_regression():
    flagged = []
    for seed in range(8):
        rows = compare.judge(synthetic_run(2 * seed), synthetic_run(2 * seed + 1))
        flagged += [(seed, r.name, f"{r.change:+.0%}") for r in rows if r.verdict == compare.REGRESSION]
    assert flagged == []


def test_a_change_past_the_tolerance_inside_the_noise_is_said_to_be_noise():
    # 40 streams: their TTFE p50 moves by more than 10% between draws of the same process
    pairs = [(synthetic_run(s, streams=40), synthetic_run(s + 100, streams=40)) for s in range(12)]
    rows = [next(r for r in compare.judge(a, b) if r.name == "ttfe_ms p50") for a, b in pairs]
    past = [r for r in rows if r.change is not None and r.change > 0.10]
    assert past, "no draw moved past the tolerance: the test shows nothing"
    assert all(r.verdict == compare.NOISE and r.low <= 0 <= r.high for r in past)


def test_a_real_shift_is_a_regression_with_an_interval_that_excludes_zero():
    rows = {r.name: r for r in compare.judge(synthetic_run(1), synthetic_run(2, ttfe_scale=1.5, gap_scale=1.4))}
    for name in ("ttfe_ms p50", "ttfe_ms p95", "gap_ms p50", "gap_ms p99"):
        row = rows[name]
        assert row.verdict == compare.REGRESSION and row.low > 0, (name, row)
    assert rows["ttfe_ms p50"].change == pytest.approx(0.5, abs=0.12)


def test_a_percentile_without_enough_samples_is_not_judged_and_says_what_it_needs():
    rows = {r.name: r for r in compare.judge(synthetic_run(1), synthetic_run(2, ttfe_scale=2.0))}
    row = rows["ttfe_ms p99"]  # 300 streams: a p99 needs 1,000
    assert row.verdict == compare.TOO_FEW and row.why == "300 and 300 samples; p99 needs 1000 in each"
    assert compare.needed("p50") == 20 and compare.needed("p95") == 200 and compare.needed("p99") == 1000


def test_an_error_rate_rise_is_judged_against_its_noise():
    rows = {r.name: r for r in compare.judge(synthetic_run(1, error_share=0.02), synthetic_run(2, error_share=0.2))}
    assert rows["error_rate"].verdict == compare.REGRESSION and rows["error_rate"].low > 0


def test_run_level_rates_are_judged_by_the_tolerance_and_say_so():
    rows = {r.name: r for r in compare.judge(synthetic_run(1), synthetic_run(2))}
    assert rows["events_per_s"].why == "one value per run: judged by the tolerance alone"


def test_the_same_two_runs_give_the_same_table():
    a, b = synthetic_run(3), synthetic_run(4)
    assert compare.judge(a, b) == compare.judge(a, b)
