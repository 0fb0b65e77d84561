"""The web UI's live numbers: a stream's gaps are one array, windows are bounded and say so."""

from __future__ import annotations

import numpy as np
import pytest

from sseload import webui
from sseload.webui import LiveStats

pytestmark = pytest.mark.unit


def row(rows: list[dict], prefix: str) -> tuple[str, str]:
    (found,) = [(r["metric"], r["value"]) for r in rows if r["metric"].startswith(prefix)]
    return found


def test_gap_and_ttfe_percentiles_are_those_of_the_streams_added():
    live, rng = LiveStats(), np.random.default_rng(7)
    all_gaps = []
    for i in range(40):
        gaps = rng.uniform(5, 50, size=30)
        all_gaps.append(gaps)
        live.add_stream("ok" if i % 4 else "reset", 100.0 + i, gaps, 31)
    rows = live.rows(active=3, report_href=None)
    label, value = row(rows, "gap p50")
    expected = np.percentile(np.concatenate(all_gaps), [50, 99, 100])
    assert label == "gap p50 / p99 / max (ms, last 10 s)"
    assert value == " / ".join(f"{v:.1f}" for v in expected)
    ttfe = np.percentile(np.arange(100.0, 140.0), [50, 95, 99])
    assert row(rows, "TTFE p50")[1] == " / ".join(f"{v:.1f}" for v in ttfe)
    assert row(rows, "outcome: reset")[1] == "10 (25.0%)"


def test_without_samples_the_percentiles_are_dashes():
    rows = LiveStats().rows(active=0, report_href=None)
    assert row(rows, "gap p50")[1] == "- / - / -" and row(rows, "TTFE p50")[1] == "- / - / -"


def test_gap_samples_are_capped_and_the_label_says_the_window_it_shows(monkeypatch):
    monkeypatch.setattr(webui, "MAX_GAP_SAMPLES", 1_000)
    clock = iter(np.arange(0.0, 100.0, 0.01))
    monkeypatch.setattr(webui.time, "monotonic", lambda: float(next(clock)))
    live = LiveStats()
    for _ in range(100):  # 100 streams of 49 gaps, a hundredth of a second apart
        live.add_stream("ok", 1.0, np.full(49, 20.0), 50)
    assert live._gap_count <= 1_000 and sum(a.size for _, a in live.gaps) == live._gap_count
    label, _ = row(live.rows(active=0, report_href=None), "gap p50")
    assert label == "gap p50 / p99 / max (ms, last 0.21 s)"  # the last 20 streams (980 gaps) fit


def test_a_worker_reports_at_most_its_share_of_gaps_as_a_plain_list():
    worker, master = LiveStats(), LiveStats()
    for _ in range(200):
        worker.add_stream("ok", 5.0, np.full(49, 20.0), 50)
    report = worker.take_report(active=7)
    assert type(report["gaps"]) is list and len(report["gaps"]) == webui.MAX_REPORT_GAPS
    assert report["events"] == 200 * 50 and report["outcomes"] == {"ok": 200}
    assert worker.take_report(active=0)["gaps"] == []  # taken once
    active: dict[str, int] = {}
    master.merge_report(report, active, "w1")
    assert active == {"w1": 7}
    assert row(master.rows(active=7, report_href=None), "gap p50")[1] == "20.0 / 20.0 / 20.0"


@pytest.mark.parametrize("n_events", [0, 1])
def test_streams_without_gaps_add_none(n_events):
    live = LiveStats()
    live.add_stream("incomplete", None, np.empty(0), n_events)
    assert not live.gaps and live.take_report(active=0)["gaps"] == []
