"""Charts of OpenAI-style runs: token charts drawn from token data, with the summary's definitions and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sseload import charts, results
from sseload.llm import stream_tokens
from sseload.metrics import GOODPUT, ITL, OUTPUT_TOKENS_PER_S, TPOT, TTFT
from sseload.records import EventBuffer, StreamRecord, to_tables

pytestmark = pytest.mark.unit

T0_NS = 1_700_000_000_000_000_000
TOKEN_CHARTS = {"ttft.png", "tpot.png", "itl.png", "tokens_over_time.png"}
CHUNK_MS = (0.0, 20.0, 50.0, 60.0)  # after TTFT: four chunks carrying output, 1, 3, 2 and 1 tokens


def openai_run(streams: int = 8, usage_per_chunk: bool = False, openai: bool = True, slo: dict | None = None,
               events: bool = True) -> results.Run:
    """Streams a second apart, each a role chunk, four output chunks (7 tokens) and a usage chunk.

    ``usage_per_chunk``: every output chunk reports the cumulative completion_tokens, as vLLM's
    continuous usage stats do. ``openai=False``: the same stream timing as plain SSE.
    """
    records, buf = [], EventBuffer()
    for i in range(streams):
        ttft_ms = 100.0 + 10 * i
        offsets_ms = [5.0, *(ttft_ms + c for c in CHUNK_MS), ttft_ms + 65]
        t0_perf = (i + 1) * 10**12
        for offset_ms in offsets_ms:
            buf.t_ns.append(t0_perf + int(offset_ms * 1e6))
            buf.size.append(100)
            buf.server_ns.append(0)
        if openai:
            cumulative = np.cumsum([1, 3, 2, 1])
            chunks = [1 + 2 * (int(c) + 1) if usage_per_chunk else 1 for c in cumulative]
            packed = np.array([2 * (0 + 1) if usage_per_chunk else 0, *chunks, 2 * (7 + 1)], dtype=np.int64)
            buf.llm.extend(packed.tolist())
            t_ns = np.array(buf.t_ns[-len(offsets_ms):], dtype=np.int64).tobytes()
            buf.tokens.extend(stream_tokens(packed.tobytes(), t_ns, t0_perf).chunk_tokens.tolist())
        llm = {"ttft_ns": int(ttft_ms * 1e6), "output_tokens": 7, "tokens_from": "usage"} if openai else {}
        records.append(StreamRecord(
            **llm, stream_id=i + 1, worker=0, user=i, t0_perf_ns=t0_perf, start_ns=T0_NS + i * 10**9,
            scheduled_ns=0, connect_ns=-1, upload_ns=0, ttfb_ns=4_000_000, ttfe_ns=5_000_000,
            duration_ns=int((ttft_ms + 70) * 1e6), sign_ns=0, auth_fetch_ns=0, status=200,
            content_type="text/event-stream", charset_warning=False, body_bytes=80, response_bytes=800,
            events=len(offsets_ms), malformed_events=0, outcome="ok", error_code="", error="", reused=True,
        ))
    stream_table, event_table = to_tables(records, buf)
    info = {"run_id": "synthetic", "scenario": {"gateway": {"limit_s": 40.0},
                                                "slo": slo or {"ttft_ms": 0.0, "tpot_ms": 0.0, "e2e_ms": 0.0}}}
    return results.Run(Path("synthetic"), info, stream_table.to_pandas(), event_table.to_pandas() if events else None)


@pytest.fixture
def drawn(monkeypatch) -> dict[str, list[tuple[str, str, str]]]:
    """Each chart drawn: its axes' (title, x label, y label), by file name."""
    seen: dict[str, list[tuple[str, str, str]]] = {}
    save = charts._save

    def record(fig, path: Path) -> Path:
        seen[path.name] = [(ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]
        return save(fig, path)

    monkeypatch.setattr(charts, "_save", record)
    return seen


def draw_token_charts(run: results.Run, folder: Path) -> set[str]:
    """The token charts as the report draws them (charts.draw_all draws every chart of charts.ALL)."""
    paths = [charts.ALL[name](run, folder / name) for name in TOKEN_CHARTS]
    return {path.name for path in paths if path is not None}


def test_an_openai_run_draws_the_token_charts_into_the_report(tmp_path):
    assert draw_token_charts(openai_run(), tmp_path) == TOKEN_CHARTS
    assert all((tmp_path / name).stat().st_size > 0 for name in TOKEN_CHARTS)


def test_a_plain_sse_run_draws_no_token_chart(tmp_path):
    assert draw_token_charts(openai_run(openai=False), tmp_path) == set()
    assert charts.ttfe_distribution(openai_run(openai=False), tmp_path / "ttfe.png") is not None


def test_token_charts_are_titled_with_the_metric_tables_labels_and_units(tmp_path, drawn):
    draw_token_charts(openai_run(slo={"ttft_ms": 135.0, "tpot_ms": 0.0, "e2e_ms": 0.0}), tmp_path)
    for name, metric in (("ttft.png", TTFT), ("tpot.png", TPOT), ("itl.png", ITL)):
        (hist_title, hist_x, _), (cdf_title, cdf_x, _) = drawn[name]
        assert hist_title == f"{metric.label}: histogram" and cdf_title == f"{metric.label}: CDF"
        assert hist_x == cdf_x == metric.heading
    (tokens_title, _, tokens_unit), (goodput_title, _, goodput_unit) = drawn["tokens_over_time.png"]
    assert tokens_title.startswith(charts._title(OUTPUT_TOKENS_PER_S.label)) and tokens_unit == "tokens/s"
    assert goodput_title.startswith(charts._title(GOODPUT.label)) and "ttft_ms <= 135" in goodput_title
    assert goodput_unit == GOODPUT.unit


def test_goodput_is_drawn_only_when_the_scenario_has_an_slo(tmp_path, drawn):
    charts.tokens_over_time(openai_run(), tmp_path / "tokens.png")
    assert len(drawn["tokens.png"]) == 1


def test_the_itl_chart_shows_the_gaps_the_summary_counts():
    run = openai_run()
    summary = results.summarise(run)
    itl = results.itl_ms(results.output_chunks(run.events)).dropna()
    assert results.percentiles(itl) == summary["itl_ms"]
    assert sorted(set(itl)) == [10.0, 20.0, 30.0]  # between the output chunks only


def test_without_events_there_is_no_itl_chart_but_tokens_still_count_at_each_streams_end(tmp_path):
    run = openai_run(events=False)
    assert charts.itl_distribution(run, tmp_path / "itl.png") is None
    t_s, tokens = charts._tokens_at(run)
    assert tokens.sum() == results.summarise(run)["output_tokens"]
    np.testing.assert_allclose(t_s, charts._end_s(run.streams))


def test_a_streams_tokens_are_spread_over_its_output_chunks_and_sum_to_the_summarys():
    run = openai_run(streams=1)
    t_s, tokens = charts._tokens_at(run)
    chunk_s = (100.0 + np.array(CHUNK_MS)) / 1e3
    np.testing.assert_allclose(t_s, chunk_s)
    np.testing.assert_allclose(tokens, [7 / 4] * 4)  # the usage chunk gives the count, not when it came
    assert tokens.sum() == results.summarise(run)["output_tokens"]


def test_the_tokens_each_chunk_carried_place_them_where_the_events_say():
    run = openai_run(streams=1)
    run.events["tokens"] = [0, 1, 3, 2, 1, 0]  # sseload.llm's count per chunk: role, four outputs, usage
    t_s, tokens = charts._tokens_at(run)
    np.testing.assert_allclose(tokens, [1, 3, 2, 1])


def test_per_chunk_usage_places_each_chunks_own_tokens():
    run = openai_run(streams=1, usage_per_chunk=True)
    t_s, tokens = charts._tokens_at(run)
    np.testing.assert_allclose(tokens, [1, 3, 2, 1])


def test_output_tokens_per_second_buckets_hold_each_seconds_tokens(tmp_path, monkeypatch):
    plotted = []
    monkeypatch.setattr(charts.plt.Axes, "plot", lambda self, x, y, **kw: plotted.append((list(x), list(y))))
    charts.tokens_over_time(openai_run(streams=3), tmp_path / "tokens.png")
    (x, y), = plotted
    assert x[:3] == [0.0, 1.0, 2.0] and y[:3] == [7.0, 7.0, 7.0] and sum(y) == 21.0
