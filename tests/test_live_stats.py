"""The live numbers (sseload.views.live) and the web UI tab's rows of them (sseload.run.webui.rows): events and
first events count as they arrive, nothing is counted twice, a worker's report adds up exactly on
the master, the whole run survives the window, memory stays bounded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sseload.protocol import sse
from sseload.protocol.dialects import OPENAI, program
from sseload.record.metrics import ACTIVE_STREAMS, GAP, OUTPUT_TOKENS_PER_S, TPOT, TTFE, TTFT
from sseload.run.webui import rows
from sseload.views import live as live_mod
from sseload.views.live import LATENCIES, LiveStats, LogHistogram, TokenFacts

pytestmark = pytest.mark.unit

TTFT_ROW = f"{TTFT.label} p50 / p95 / p99 ({TTFT.unit}, last 10 s)"
TOKENS_ROW = f"{OUTPUT_TOKENS_PER_S.label} ({OUTPUT_TOKENS_PER_S.unit}, last 10 s)"
TPOT_ROW = f"{TPOT.label} p50 / p95 / p99 ({TPOT.unit}, last 10 s)"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(live_mod.time, "monotonic", c)
    return c


def near(text: str, exact) -> bool:
    """A row's ``a / b / c`` against exact values: each within the histogram's half a bin (0.58%)."""
    values = [float(v) for v in text.split(" / ")]
    pairs = zip(values, exact, strict=True)
    return len(values) == len(exact) and all(abs(v - e) <= 0.0059 * e + 0.05 for v, e in pairs)


def shown(live: LiveStats, whole_run: bool = False, active: int = 0) -> dict[str, str]:
    return {r["metric"]: r["value"] for r in rows(live, active, whole_run)}


def event_logs():
    yield sse.PyEventLog
    try:
        from sseload._sse import EventLog
    except ImportError:  # pragma: no cover - CI builds it
        return
    yield EventLog


class OpenStream:
    """An open stream as LiveStats reads it (SSEConnection.open_log): a real event log fed as reads come."""

    def __init__(self, log_class, t_start_ns: int) -> None:
        self.log = log_class()
        self.t_start_ns = t_start_ns

    def open_log(self):
        return self.log, self.t_start_ns

    def event_at(self, t_ns: int) -> None:
        self.log.feed(b"data: x\n\n", t_ns)

    def times(self) -> np.ndarray:
        return np.frombuffer(self.log.arrays()[0], dtype=np.int64)


def test_histogram_percentiles_are_within_half_a_bin_of_the_exact_ones():
    values = np.random.default_rng(3).lognormal(np.log(120.0), 0.8, 50_000)
    h = LogHistogram()
    h.add(values)
    for p in (1, 50, 90, 99, 99.9):
        exact = np.percentile(values, p, method="inverted_cdf")
        assert h.percentile(p) == pytest.approx(exact, rel=0.006)
    assert (h.percentile(0), h.percentile(100)) == (values.min(), values.max())
    assert h.total == values.size and h.sum == pytest.approx(values.sum())
    assert LogHistogram().percentile(50) is None


def test_histogram_bounds_hold_values_outside_its_range_and_travel_exactly():
    h = LogHistogram()
    h.add([0.0, 1e-9, 5.0, 2e9])
    back = LogHistogram.from_wire(h.to_wire())
    assert (back.counts == h.counts).all() and (back.total, back.min, back.max) == (4, 0.0, 2e9)
    assert h.count_at_most([1e-3, 10.0, 1e7]) == [0, 3, 3]  # bins wholly at or below; 2e9 is in none


@pytest.mark.parametrize("log_class", list(event_logs()))
def test_open_streams_count_their_events_first_events_and_gaps_as_they_arrive(clock, log_class):
    live = LiveStats()
    streams = [OpenStream(log_class, t_start_ns=0) for _ in range(3)]
    for s in streams:
        live.stream_opened(s)
    for i, s in enumerate(streams):  # first events at 250, 260, 270 ms, then one every 40 ms
        for k in range(5):
            s.event_at(int((250 + 10 * i + 40 * k) * 1e6))
    clock.now += 1
    values = shown(live)
    assert near(values["TTFE p50 / p95 / p99 (ms, last 10 s)"], [260.0, 270.0, 270.0])
    assert values["gap p50 / p99 / max (ms, last 10 s)"] == "40.0 / 40.0 / 40.0"
    assert live.run.events == 15 and live.run.first_events == 3 and live.streams_finished == 0
    # more events, then the streams end: nothing already counted is counted again
    for s in streams:
        s.event_at(int(500e6))
        s.event_at(int(600e6))
    live.count_open()
    for i, s in enumerate(streams):
        live.add_stream("ok", 250.0 + 10 * i, s.times(), key=s)
    assert live.run.events == 21 and live.run.first_events == 3
    assert live.run.hist[TTFE.key].total == 3 and live.run.hist[GAP.key].total == 18
    assert live.run.outcomes == {"ok": 3} and not live._open


def test_a_stream_counted_only_at_its_end_counts_all_of_it_once(clock):
    live = LiveStats()
    t = (np.arange(31) * 20e6).astype(np.int64)
    live.add_stream("ok", 100.0, t)
    assert live.run.events == 31 and live.run.hist[GAP.key].total == 30 and live.run.hist[TTFE.key].total == 1


def test_the_window_forgets_and_the_whole_run_does_not(clock):
    live = LiveStats()
    for i in range(40):
        live.add_stream("ok" if i % 4 else "reset", 100.0 + i, (np.arange(31) * 20e6).astype(np.int64))
    live.tick(active=3)
    clock.now += 30
    live.tick(active=0)
    live.stop()
    window, whole = shown(live), shown(live, whole_run=True)
    assert window["TTFE p50 / p95 / p99 (ms, last 10 s)"] == "- / - / -"
    ttfe = np.percentile(np.arange(100.0, 140.0), [50, 95, 99], method="inverted_cdf")
    assert near(whole["TTFE p50 / p95 / p99 (ms, whole run)"], ttfe)
    assert whole["gap p50 / p99 / max (ms, whole run)"] == "20.0 / 20.0 / 20.0"
    assert whole["events/s (whole run)"] == f"{40 * 31 / 30:.0f}"
    assert whole["outcome: reset"] == "10 (25.0%)" and whole["streams finished"] == "40"
    clock.now += 100  # after the stop the whole run's rates stay those of its length
    assert shown(live, whole_run=True)["events/s (whole run)"] == f"{40 * 31 / 30:.0f}"


def test_rates_are_over_the_seconds_the_window_spans(clock):
    live = LiveStats()
    for _ in range(6):  # 100 events every 2 s: 50 events/s
        live.add_stream("ok", 10.0, (np.arange(100) * 1e6).astype(np.int64))
        clock.now += 2
        live.tick(active=1)
    assert shown(live)["events/s (last 10 s)"] == "50"
    assert live.history[-1]["events_per_s"] == 50 and live.history[-1]["streams_per_s"] == 0.5
    assert live.history[-1]["outcomes"] == {"ok": 0.5}


def test_a_worker_reports_what_it_counted_since_its_last_report_and_the_master_adds_it(clock):
    worker, master = LiveStats(reports=True), LiveStats()
    rng = np.random.default_rng(1)
    for i in range(200):
        t = np.cumsum(rng.uniform(5e6, 50e6, 50)).astype(np.int64)
        worker.add_stream("ok", 100.0 + i, t, tokens=TokenFacts(10, 150.0 + i, None))
    report = worker.take_report(active=7)
    assert worker.take_report(active=0)["events"] == 0  # taken once
    active: dict[str, int] = {}
    master.merge_report(report, active, "w1")
    assert active == {"w1": 7}
    for name in LATENCIES:
        assert (master.run.hist[name].counts == worker.run.hist[name].counts).all()
    assert (master.run.events, master.run.tokens, master.run.token_streams) == (200 * 50, 2000, 200)
    assert shown(master) == shown(worker)


def test_history_stays_bounded_and_spans_the_whole_run(clock, monkeypatch):
    monkeypatch.setattr(live_mod, "MAX_HISTORY", 100)
    live = LiveStats()
    for _ in range(1000):
        clock.now += 2
        live.tick(active=1)
    assert len(live.history) <= 100
    assert live.history[-1]["t"] - live.history[0]["t"] > 0.9 * 2000


def test_token_streams_lead_the_table_with_ttft_output_tokens_per_second_and_tpot_before_ttfe(clock):
    live = LiveStats()
    for i in range(40):
        live.add_stream("ok", 5.0, np.array([0, 20_000_000], dtype=np.int64),
                        tokens=TokenFacts(24, 200.0 + i, 10.0))
    clock.now += 4
    values = shown(live)
    assert near(values[TTFT_ROW], np.percentile(np.arange(200.0, 240.0), [50, 95, 99], method="inverted_cdf"))
    assert values[TOKENS_ROW] == OUTPUT_TOKENS_PER_S.format(40 * 24 / 4)
    names = list(values)
    assert names[:5] == [ACTIVE_STREAMS, TTFT_ROW, TOKENS_ROW, TPOT_ROW, "TTFE p50 / p95 / p99 (ms, last 10 s)"]


def chunk(content: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": content}}]}).encode() + b"\n\n"


ROLE = b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}).encode() + b"\n\n"


def usage(completion_tokens: int) -> bytes:
    return (b"data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 9,
                                                             "completion_tokens": completion_tokens}}).encode()
            + b"\n\n")


class OpenLLMStream(OpenStream):
    """An open OpenAI chat stream: its event log reads chunks as sseload's client does."""

    def __init__(self, log_class, t_start_ns: int) -> None:
        self.log = log_class(program=program(OPENAI), sentinel=b"[DONE]")
        self.t_start_ns = t_start_ns

    def feed(self, data: bytes, t_ms: float) -> None:
        self.log.feed(data, int(t_ms * 1e6))


@pytest.mark.parametrize("log_class", list(event_logs()))
def test_an_open_llm_streams_tokens_and_ttft_count_as_its_chunks_arrive_and_its_end_adds_what_usage_adds(
        clock, log_class):
    live = LiveStats()
    s = OpenLLMStream(log_class, t_start_ns=0)
    live.stream_opened(s)
    s.feed(ROLE, 1.0)  # the role-only chunk: TTFE, not TTFT
    live.count_open()
    assert (live.run.first_events, live.run.first_tokens, live.run.tokens, live.llm) == (1, 0, 0, False)
    s.feed(chunk("a") + chunk("b"), 150.0)
    s.feed(chunk("c"), 170.0)
    live.count_open()
    assert (live.run.tokens, live.run.first_tokens, live.llm) == (3, 1, True)
    assert live.run.hist[TTFT.key].percentile(50) == pytest.approx(150.0, rel=0.006)
    s.feed(chunk("d") + usage(7), 190.0)  # the usage says 7 in all (tokens of several per chunk)
    live.add_stream("ok", 1.0, s.times(), key=s, tokens=TokenFacts(7, 150.0, 6.7))
    assert (live.run.tokens, live.run.first_tokens, live.run.token_streams) == (7, 1, 1)
    assert live.run.hist[TTFT.key].total == 1 and live.run.hist[TPOT.key].total == 1


def test_output_tokens_per_second_stay_steady_while_streams_end_at_their_own_times(clock):
    """The issue's 10 steady streams: counted at their ends, the chart swung between 0 and 1,300 tokens/s."""
    live = LiveStats()
    streams = [OpenLLMStream(sse.PyEventLog, t_start_ns=0) for _ in range(10)]
    for s in streams:
        live.stream_opened(s)
    t_ms = 0.0
    for tick in range(6):
        for _ in range(20):  # a chunk of one token every 100 ms on each stream
            t_ms += 100.0
            for s in streams:
                s.feed(chunk("x"), t_ms)
        if tick == 3:  # every stream ends now, its usage the tokens its chunks carried
            for s in streams:
                s.feed(usage(80), t_ms)
                live.add_stream("ok", 1.0, s.times(), key=s, tokens=TokenFacts(80, 100.0, 100.0))
            streams = [OpenLLMStream(sse.PyEventLog, t_start_ns=0) for _ in range(10)]
            for s in streams:
                live.stream_opened(s)
        clock.now += 2
        live.tick(active=10)
    assert [p["tokens_per_s"] for p in live.history] == [100.0] * 6


def test_llm_event_logs_give_their_chunks_from_an_event_on_alike():
    logs = [cls(program=program(OPENAI)) for cls in event_logs()]
    for log in logs:
        log.feed(ROLE + chunk("a") + chunk("b") + usage(2), 1)
    for start in (-1, 0, 2, 4, 9):
        whole = logs[0].llm()
        assert {log.llm(start) for log in logs} == {whole[8 * max(start, 0):]}


def test_plain_sse_streams_show_no_token_rows(clock):
    live = LiveStats()
    live.add_stream("ok", 5.0, np.array([0, 20_000_000], dtype=np.int64))
    assert not [name for name in shown(live) if TTFT.label in name or OUTPUT_TOKENS_PER_S.unit in name]


def test_without_samples_the_percentiles_are_dashes(clock):
    values = shown(LiveStats())
    assert values["gap p50 / p99 / max (ms, last 10 s)"] == "- / - / -"
    assert values["TTFE p50 / p95 / p99 (ms, last 10 s)"] == "- / - / -"


@pytest.mark.parametrize("log_class", list(event_logs()))
def test_a_stream_whose_events_the_recorder_took_while_open_is_counted_once_with_its_first_event(clock, log_class):
    """The recorder spills a long stream's events at its flushes, maybe before the live view first looked:
    every event still counts once, TTFE is its first event's, and no gap spans events it never saw."""
    live = LiveStats()
    s = OpenStream(log_class, t_start_ns=0)
    live.stream_opened(s)
    for k in range(4):  # 100, 110, 120, 130 ms: taken before the first tick
        s.event_at(int((100 + 10 * k) * 1e6))
    s.log.spill()
    s.event_at(int(200e6))  # then one more, seen
    live.count_open()
    assert live.run.events == 5 and live.run.first_events == 1
    assert near(shown(live)["TTFE p50 / p95 / p99 (ms, last 10 s)"], [100.0, 100.0, 100.0])
    assert live.run.hist[GAP.key].total == 0  # 130 -> 200 ms is a gap it could not see
    for t in (220, 240, 260):
        s.event_at(int(t * 1e6))
    s.log.spill()  # taken again, unseen, then the stream ends with one more held
    s.event_at(int(280e6))
    live.add_stream("ok", 100.0, s.times(), key=s, first=len(s.log) - s.log.held)
    assert live.run.events == 9 and live.run.first_events == 1
    assert live.run.hist[GAP.key].total == 0  # (280 ms's gap spans the unseen ones)
