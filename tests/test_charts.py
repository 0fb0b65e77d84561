"""Charts: each described once and drawn as a PNG and as ECharts options; the token charts of
OpenAI-style runs from token data, with the summary's definitions and labels; the fixes a reader
asked for (durations' axis, concurrency gaps, byte units)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sseload.protocol.outcomes import Outcome
from sseload.protocol.sse import KIND_BITS
from sseload.record.metrics import GOODPUT, ITL, OUTPUT_TOKENS_PER_S, TOKENS_PER_S, TPOT, TTFT
from sseload.record.records import EventBuffer, StreamRecord, to_tables
from sseload.record.tokens import stream_tokens
from sseload.views import chart_parts, charts, llm_charts, results

pytestmark = pytest.mark.unit

T0_NS = 1_700_000_000_000_000_000
TOKEN_CHARTS = {"ttft", "ttft_over_time", "tpot", "itl", "tokens_over_time", "tokens_per_user_against_total"}
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
            chunks = [1 + KIND_BITS * (int(c) + 1) if usage_per_chunk else 1 for c in cumulative]
            packed = np.array([KIND_BITS * (0 + 1) if usage_per_chunk else 0, *chunks, KIND_BITS * (7 + 1)],
                              dtype=np.int64)
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


def labels(chart: charts.Chart) -> list[tuple[str, str, str]]:
    """Each panel's (title, x label, y label)."""
    return [(p.title, p.xlabel, p.ylabel) for p in chart.panels]


def token_charts(run: results.Run) -> dict[str, charts.Chart]:
    return {c.name: c for c in charts.charts_of(run) if c.name in TOKEN_CHARTS}


def test_an_openai_run_draws_the_token_charts_into_the_report(tmp_path):
    made = token_charts(openai_run())
    assert set(made) == TOKEN_CHARTS
    paths = charts.draw_all(openai_run(), tmp_path, list(made.values()))
    assert all(p.stat().st_size > 0 for p in paths) and {p.stem for p in paths} == TOKEN_CHARTS


def test_a_plain_sse_run_draws_no_token_chart():
    assert token_charts(openai_run(openai=False)) == {}
    assert charts.ttfe_distribution(openai_run(openai=False)) is not None


def test_token_charts_are_titled_with_the_metric_tables_labels_and_units():
    made = token_charts(openai_run(slo={"ttft_ms": 135.0, "tpot_ms": 0.0, "e2e_ms": 0.0}))
    for name, metric in (("ttft", TTFT), ("tpot", TPOT), ("itl", ITL)):
        (hist_title, hist_x, _), (cdf_title, cdf_x, _) = labels(made[name])
        assert hist_title == f"{metric.label}: histogram" and cdf_title == f"{metric.label}: CDF"
        assert hist_x == cdf_x == metric.heading
    (tokens_title, _, tokens_unit), (goodput_title, _, goodput_unit) = labels(made["tokens_over_time"])
    assert tokens_title.startswith(chart_parts.title_of(OUTPUT_TOKENS_PER_S.label)) and tokens_unit == "tokens/s"
    assert goodput_title.startswith(chart_parts.title_of(GOODPUT.label)) and "ttft_ms <= 135" in goodput_title
    assert goodput_unit == GOODPUT.unit


def test_goodput_is_drawn_only_when_the_scenario_has_an_slo():
    assert len(llm_charts.tokens_over_time(openai_run()).panels) == 1


def test_the_itl_chart_shows_the_gaps_the_summary_counts():
    run = openai_run()
    summary = results.summarise(run)
    itl = results.itl_ms(results.output_chunks(run.events)).dropna()
    assert results.percentiles(itl) == summary["itl_ms"]
    assert sorted(set(itl)) == [10.0, 20.0, 30.0]  # between the output chunks only


def test_without_events_there_is_no_itl_chart_but_tokens_still_count_at_each_streams_end(tmp_path):
    run = openai_run(events=False)
    assert llm_charts.itl_distribution(run) is None
    t_s, tokens = llm_charts._tokens_at(run)
    assert tokens.sum() == results.summarise(run)["output_tokens"]
    np.testing.assert_allclose(t_s, chart_parts.end_s(run.streams))


def test_a_streams_tokens_are_spread_over_its_output_chunks_and_sum_to_the_summarys():
    run = openai_run(streams=1)
    t_s, tokens = llm_charts._tokens_at(run)
    chunk_s = (100.0 + np.array(CHUNK_MS)) / 1e3
    np.testing.assert_allclose(t_s, chunk_s)
    np.testing.assert_allclose(tokens, [7 / 4] * 4)  # the usage chunk gives the count, not when it came
    assert tokens.sum() == results.summarise(run)["output_tokens"]


def test_the_tokens_each_chunk_carried_place_them_where_the_events_say():
    run = openai_run(streams=1)
    run.events["tokens"] = [0, 1, 3, 2, 1, 0]  # sseload.record.tokens' count per chunk: role, four outputs, usage
    t_s, tokens = llm_charts._tokens_at(run)
    np.testing.assert_allclose(tokens, [1, 3, 2, 1])


def test_per_chunk_usage_places_each_chunks_own_tokens():
    run = openai_run(streams=1, usage_per_chunk=True)
    t_s, tokens = llm_charts._tokens_at(run)
    np.testing.assert_allclose(tokens, [1, 3, 2, 1])


def test_output_tokens_per_second_buckets_hold_each_seconds_tokens():
    (series,) = llm_charts.tokens_over_time(openai_run(streams=3)).panels[0].series
    assert list(series.x[:3]) == [0.0, 1.0, 2.0] and list(series.y[:3]) == [7.0, 7.0, 7.0] and series.y.sum() == 21.0


def streams_run(start_s, duration_s, ttfe_ms, limit_s: float = 40.0, events: pd.DataFrame | None = None):
    """A run of streams given by start, duration and TTFE (what the stream charts read)."""
    n = len(start_s)
    streams = pd.DataFrame({
        "stream_id": np.arange(1, n + 1), "start_ns": (T0_NS + np.asarray(start_s) * 1e9).astype(np.int64),
        "duration_ms": np.asarray(duration_s, float) * 1e3, "ttfe_ms": np.asarray(ttfe_ms, float),
        "outcome": ["ok"] * n, "body_bytes": [80] * n, "response_bytes": [800] * n})
    return results.Run(Path("synthetic"), {"scenario": {"gateway": {"limit_s": limit_s}}}, streams, events)


def test_durations_far_from_the_limit_keep_the_axis_on_the_streams_and_say_where_the_limit_is():
    (panel,) = charts.durations(streams_run(np.arange(50) * 0.1, np.full(50, 2.0) + np.arange(50) * 0.01,
                                            np.full(50, 50.0))).panels
    assert panel.marks == [] and "gateway limit 40 s, off the axis" in panel.note and "2.49 s" in panel.note
    (panel,) = charts.durations(streams_run([0, 1, 2], [10.0, 39.0, 40.0], [50.0] * 3)).panels
    assert [m.x for m in panel.marks] == [40.0] and panel.note == ""


def test_latency_against_concurrency_breaks_its_lines_where_no_stream_started():
    # 10 streams one after another, then 50 in the same instant (a fast spawn): each of those saw 60
    # open, and no stream started with 11-59 open
    start = np.concatenate([np.arange(10) * 0.5, np.full(50, 10.0)])
    run = streams_run(start, np.full(60, 100.0), np.concatenate([np.full(10, 20.0), np.full(50, 300.0)]))
    (panel,) = charts.latency_by_concurrency(run).panels
    p50 = panel.series[0]
    assert np.isnan(p50.y).sum() >= 10 and p50.y[0] == 20.0 and p50.y[-1] == 300.0
    data = charts.echarts_options(charts.Chart("c", [panel]))[0]["series"][0]["data"]
    assert [y for _, y in data].count(None) == np.isnan(p50.y).sum()  # breaks, not a line across


def test_bytes_per_second_are_drawn_in_a_readable_unit():
    assert charts._scaled_bytes(np.array([2.5e6, 1e6]))[1] == "MB/s"
    values, unit = charts._scaled_bytes(np.array([1500.0, 800.0]))
    assert unit == "kB/s" and list(values) == [1.5, 0.8]
    assert charts._scaled_bytes(np.array([10.0]))[1] == "B/s"


def test_every_chart_draws_as_a_png_and_as_echarts_options_with_the_same_series(tmp_path):
    run = openai_run(slo={"ttft_ms": 135.0, "tpot_ms": 0.0, "e2e_ms": 0.0})
    made = charts.charts_of(run)
    assert {c.name for c in made} >= TOKEN_CHARTS | {"ttfe", "gaps", "durations", "throughput"}
    for chart in made:
        assert charts.png(chart, tmp_path / f"{chart.name}.png").stat().st_size > 5_000
        options = charts.echarts_options(chart)
        assert len(options) == len(chart.panels)
        for option, panel in zip(options, chart.panels, strict=True):
            assert option["title"]["text"] == panel.title and option["xAxis"]["name"] == panel.xlabel
            drawn = [s["name"] for s in option["series"] if s.get("data")]
            assert drawn == [s.name for s in panel.series]
            json.dumps(option, allow_nan=False)  # what report.html embeds: no NaN


def test_outcome_colours_are_told_apart():
    def rgb(hex_colour: str) -> np.ndarray:
        return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], float)

    close = [(a.value, b.value) for i, a in enumerate(Outcome) for b in list(Outcome)[i + 1:]
             if np.linalg.norm(rgb(a.color) - rgb(b.color)) < 60]
    assert close == []

    def luma(colour: str) -> float:  # what is left of a colour to a reader who cannot tell red from green
        return float(rgb(colour) @ [0.299, 0.587, 0.114]) / 255

    # the two errors a service most often mixes differ in lightness too
    assert abs(luma(Outcome.EVENT_ERROR.color) - luma(Outcome.HTTP_ERROR.color)) > 0.3


def test_an_llm_runs_charts_lead_with_ttft_and_its_ttfe_charts_come_after_them():
    names = [c.name for c in charts.charts_of(openai_run())]
    assert names[0] == "ttft" and names.index("ttfe") > max(names.index(n) for n in TOKEN_CHARTS)
    assert [c.name for c in charts.charts_of(openai_run(openai=False))][0] == "ttfe"


def overlapping(run: results.Run) -> results.Run:
    """The same streams started 10 ms apart: the k-th starts with k open; prompts of 100 to 800 tokens."""
    run.streams["start_ns"] = T0_NS + np.arange(len(run.streams)) * 10_000_000
    run.streams["prompt_tokens"] = 100.0 * np.arange(1, len(run.streams) + 1)
    return run


def test_ttft_is_drawn_against_prompt_tokens():
    (panel,) = llm_charts.ttft_by_prompt_tokens(overlapping(openai_run())).panels
    assert panel.title.startswith(TTFT.label) and panel.ylabel == TTFT.heading
    p50 = panel.series[0]
    known = ~np.isnan(p50.y)
    assert np.all(np.diff(p50.y[known]) > 0)  # TTFT grows 10 ms a stream, as the prompts do
    assert llm_charts.ttft_by_prompt_tokens(openai_run()) is None  # no usage's prompt tokens


def test_ttft_and_itl_are_drawn_against_concurrency():
    chart = llm_charts.ttft_itl_by_concurrency(overlapping(openai_run()))
    ttft, itl = chart.panels
    assert (ttft.ylabel, itl.ylabel) == (TTFT.heading, ITL.heading)
    assert np.nanmax(ttft.series[0].y) == 170.0  # the last stream's TTFT, at the most streams open
    assert llm_charts.ttft_itl_by_concurrency(openai_run()) is None  # one stream at a time: no curve


def test_per_user_output_tokens_per_second_are_drawn_against_the_total():
    run = overlapping(openai_run())
    (panel,) = llm_charts.tokens_per_user_against_total(run).panels
    (series,) = panel.series
    assert panel.xlabel.startswith(OUTPUT_TOKENS_PER_S.label) and panel.ylabel.startswith(TOKENS_PER_S.heading)
    total = series.x
    assert total.size >= 1 and np.all(total > 0)
    per_user = run.streams["tokens_per_s"].to_numpy()
    assert per_user.min() <= series.y.min() and series.y.max() <= per_user.max()
    assert llm_charts.tokens_per_user_against_total(openai_run(openai=False)) is None
