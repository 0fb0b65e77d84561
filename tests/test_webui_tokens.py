"""The web UI tab's token rows: live TTFT and output tokens/s for OpenAI-style streams, none for plain SSE."""

from __future__ import annotations

import numpy as np
import pytest

from sseload import webui
from sseload.metrics import OUTPUT_TOKENS_PER_S, TTFT
from sseload.webui import LiveStats

pytestmark = pytest.mark.unit

TTFT_ROW = f"{TTFT.label} p50 / p95 / p99 ({TTFT.unit}, last 10 s)"
TOKENS_ROW = f"{OUTPUT_TOKENS_PER_S.label} ({OUTPUT_TOKENS_PER_S.unit}, completed streams)"


def values(live: LiveStats) -> dict[str, str]:
    return {r["metric"]: r["value"] for r in live.rows(active=0, report_href=None)}


def add_token_streams(live: LiveStats, n: int, tokens: int = 24) -> None:
    for i in range(n):
        live.add_stream("ok", 5.0, np.full(3, 20.0), 4)
        live.add_tokens(200.0 + i, tokens)


def test_token_streams_show_ttft_percentiles_and_output_tokens_per_second():
    live = LiveStats()
    add_token_streams(live, 40)
    shown = values(live)
    ttft = np.percentile(np.arange(200.0, 240.0), [50, 95, 99])
    assert shown[TTFT_ROW] == " / ".join(f"{v:.1f}" for v in ttft)
    assert shown[TOKENS_ROW] == OUTPUT_TOKENS_PER_S.format(40 * 24 / webui.WINDOW_S)


def test_token_rows_follow_the_ttfe_row():
    live = LiveStats()
    add_token_streams(live, 1)
    names = list(values(live))
    assert names[names.index(TTFT_ROW) - 1].startswith("TTFE p50") and names[names.index(TTFT_ROW) + 1] == TOKENS_ROW


def test_plain_sse_streams_show_no_token_rows():
    live = LiveStats()
    live.add_stream("ok", 5.0, np.full(3, 20.0), 4)
    shown = values(live)
    assert TTFT_ROW not in shown and TOKENS_ROW not in shown
    assert not [name for name in shown if TTFT.label in name or OUTPUT_TOKENS_PER_S.unit in name]


def test_a_token_stream_without_a_first_token_counts_its_tokens_and_no_ttft():
    live = LiveStats()
    live.add_tokens(None, 0)
    shown = values(live)
    assert shown[TTFT_ROW] == "- / - / -" and shown[TOKENS_ROW] == "0"


def test_token_rows_stay_once_the_window_empties(monkeypatch):
    clock = iter([0.0, 100.0])
    monkeypatch.setattr(webui.time, "monotonic", lambda: next(clock))
    live = LiveStats()
    live.add_tokens(150.0, 10)
    shown = values(live)  # 100 s later: the samples left the window, the rows did not
    assert shown[TTFT_ROW] == "- / - / -" and shown[TOKENS_ROW] == "0"


def test_a_worker_forwards_its_token_facts_and_the_master_shows_them():
    worker, master = LiveStats(), LiveStats()
    add_token_streams(worker, 3000, tokens=10)
    report = worker.take_report(active=2)
    assert len(report["ttft"]) == webui.MAX_REPORT_SAMPLES and type(report["ttft"]) is list
    assert report["tokens"] == 3000 * 10 and report["token_streams"] == 3000
    taken_again = worker.take_report(active=0)
    assert (taken_again["ttft"], taken_again["tokens"], taken_again["token_streams"]) == ([], 0, 0)
    master.merge_report(report, {}, "w1")
    shown = values(master)
    ttft = np.percentile(200.0 + np.arange(webui.MAX_REPORT_SAMPLES), [50, 95, 99])
    assert shown[TTFT_ROW] == " / ".join(f"{v:.1f}" for v in ttft)
    assert shown[TOKENS_ROW] == OUTPUT_TOKENS_PER_S.format(3000 * 10 / webui.WINDOW_S)


def test_a_master_of_plain_sse_workers_shows_no_token_rows():
    worker, master = LiveStats(), LiveStats()
    worker.add_stream("ok", 5.0, np.full(3, 20.0), 4)
    master.merge_report(worker.take_report(active=1), {}, "w1")
    assert TTFT_ROW not in values(master) and TOKENS_ROW not in values(master)
