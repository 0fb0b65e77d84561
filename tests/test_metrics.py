"""The metric table: one definition of every summary number that every output and threshold reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sseload.protocol.sse import KIND_BITS
from sseload.record import metrics
from sseload.record.metrics import BY_KEY, CONSOLE, LATENCY, METRICS, THRESHOLDS, TTFE
from sseload.record.records import EventBuffer, StreamRecord, to_tables
from sseload.views import results, thresholds
from sseload.views.compare import COMPARED
from sseload.views.console import format_summary
from sseload.views.report import summary_markdown
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

#: Summary keys that are not numbers of the run: its name, outcome counts, flags, the harness's health.
NOT_METRICS = {"run_id", "outcomes", "top_errors", "missing", "partial", "partial_reason", "health",
               "embedded_target", "buffered_streams", "verdict", "tokens_from", "finish_reasons",
               "ttft_by_turn_ms"}
T0_NS = 1_700_000_000_000_000_000  # the wall clock at the first stream's start


def stream(i: int, outcome: str, start_ms: float, ttfe_ms: float, duration_ms: float, events: int) -> StreamRecord:
    """One open-model stream, 5 ms late against its schedule; 5 and 6 are one feed's two connections."""
    start_ns = T0_NS + int(start_ms * 1e6)
    feed = {"feed_id": 5} if i == 5 else {"feed_id": 5, "reconnect_ns": 100_000_000, "missed_events": 1,
                                             "feed_gap_ns": 250_000_000} if i == 6 else {}
    llm = {"ttft_ns": int(ttfe_ms * 1e6), "answer_ttft_ns": int((ttfe_ms + 20) * 1e6),  # reasoning, then the answer
           "ttst_ns": int((ttfe_ms + 20) * 1e6), "max_stall_ns": 25_000_000, "output_tokens": 3, "prompt_tokens": 12,
           "tokenizer_tokens": 4 if i == 1 else 3, "tokens_from": "usage",
           "finish_reason": "length" if i == 4 else "stop", "conversation_id": 1 + (i > 3) * 3, "turn": 1 + (i - 1) % 3}
    if outcome == "abandoned":  # its user gave up before a first output token: role-only chunks, no tokens
        llm = {**llm, "ttft_ns": -1, "answer_ttft_ns": -1, "ttst_ns": -1, "max_stall_ns": -1, "output_tokens": 0,
               "tokenizer_tokens": 0}
    return StreamRecord(**feed, **llm, **dict(
        stream_id=i, worker=0, user=i, t0_perf_ns=i * 10**12, start_ns=start_ns, scheduled_ns=start_ns - 5_000_000,
        connect_ns=-1, upload_ns=20_000, ttfb_ns=int(ttfe_ms * 0.9e6), ttfe_ns=int(ttfe_ms * 1e6),
        duration_ns=int(duration_ms * 1e6), sign_ns=4_000, auth_fetch_ns=0, status=200,
        content_type="text/event-stream", charset_warning=False, body_bytes=85, response_bytes=100 * events + 200,
        events=events, malformed_events=0, outcome=outcome, error_code="", error="", reused=True,
    ))


@pytest.fixture(scope="module")
def run() -> results.Run:
    """Six LLM streams of an open model, overlapping: four ok, one whose user gave up waiting ([load]
    patience_s) and a cutoff; reasoning before the answer, a tokenizer beside the usage; events timed
    against send times."""
    plan = [(1, "ok", 0, 100, 1000), (2, "ok", 100, 120, 1100), (3, "ok", 200, 140, 900),
            (4, "ok", 300, 160, 1200), (5, "abandoned", 400, 110, 600), (6, "cutoff", 500, 130, 1500)]
    records, buf = [], EventBuffer()
    for i, outcome, start_ms, ttfe_ms, duration_ms in plan:
        offsets_ms = [ttfe_ms, ttfe_ms + 20, ttfe_ms + 20, ttfe_ms + 45]  # the third was read with the second
        records.append(stream(i, outcome, start_ms, ttfe_ms, duration_ms, len(offsets_ms)))
        for k, offset_ms in enumerate(offsets_ms):
            t_rel_ns = int(offset_ms * 1e6)
            buf.t_ns.append(i * 10**12 + t_rel_ns)
            buf.size.append(100)
            buf.server_ns.append(T0_NS + int(start_ms * 1e6) + t_rel_ns - (k + 1) * 10_000)  # 0.01 ms late, growing
        if outcome == "abandoned":
            buf.llm.extend([0, 0, 0, 0])  # chunks carrying no output
            buf.tokens.extend([0, 0, 0, 0])
        else:
            buf.llm.extend([1, 1, 1, KIND_BITS * (3 + 1)])  # three chunks carrying output, then usage: 3 tokens
            buf.tokens.extend([1, 1, 1, 0])
    streams, events = to_tables(records, buf)
    info = {"run_id": "synthetic", "scenario": {"gateway": {"limit_s": 2.0}, "slo": {"ttft_ms": 125}}}
    return results.Run(Path("synthetic"), info, streams.to_pandas(), events.to_pandas())


@pytest.fixture(scope="module")
def summary(run) -> dict:
    return results.summarise(run)


# --- the table itself ---

def test_every_summary_number_has_a_row_in_the_metric_table(summary):
    """A number added to results.summarise without a label, unit and meaning here fails this."""
    missing = set(summary) - NOT_METRICS - set(BY_KEY)
    assert not missing, f"add {sorted(missing)} to sseload.record.metrics.METRICS"


def test_every_metric_of_the_table_is_in_a_real_summary(summary):
    assert [m.key for m in METRICS if m.key not in summary] == []


def test_every_metric_has_a_distinct_label_a_definition_and_a_kind_that_fits_its_value(summary):
    assert len({m.label for m in METRICS}) == len(METRICS) == len(BY_KEY)
    for m in METRICS:
        assert m.label and m.definition, m.key
        value = summary[m.key]
        if m.kind == "distribution":
            assert isinstance(value, dict) and set(m.stats) <= set(value), m.key
        else:
            assert isinstance(value, int | float) and not isinstance(value, bool), m.key


def test_a_metric_cannot_limit_or_compare_a_stat_it_does_not_have():
    with pytest.raises(ValueError, match="p999"):
        metrics.Metric("x_ms", "x", "ms", "distribution", "d", stats=("p50",), threshold_stats=("p999",))
    with pytest.raises(ValueError, match="names its stats"):
        metrics.Metric("x", "x", "", "scalar", "d", stats=("p50",))


# --- thresholds ---

TODAYS_THRESHOLDS = {
    "ttfe_p50_ms": ("ttfe_ms", "p50", "<="), "ttfe_p90_ms": ("ttfe_ms", "p90", "<="),
    "ttfe_p95_ms": ("ttfe_ms", "p95", "<="), "ttfe_p99_ms": ("ttfe_ms", "p99", "<="),
    "ttfe_max_ms": ("ttfe_ms", "max", "<="), "gap_p50_ms": ("gap_ms", "p50", "<="),
    "gap_p99_ms": ("gap_ms", "p99", "<="), "gap_max_ms": ("gap_ms", "max", "<="),
    "duration_p95_ms": ("duration_ms", "p95", "<="), "cutoff_rate_max": ("cutoff_rate", None, "<="),
    "error_rate_max": ("error_rate", None, "<="), "min_streams": ("streams", None, ">="),
    "min_events_per_s": ("events_per_s", None, ">="),
}


def test_every_threshold_name_accepted_before_the_table_still_means_the_same():
    for name, expected in TODAYS_THRESHOLDS.items():
        t = THRESHOLDS[name]
        assert (t.metric, t.stat, t.rule) == expected, name


def test_every_threshold_resolves_to_a_number_of_a_real_summary(summary):
    for name, t in THRESHOLDS.items():
        assert t.name == name and t.metric in BY_KEY
        assert isinstance(t.actual(summary), int | float), name


def test_a_distribution_threshold_is_named_after_its_metric_stat_and_unit():
    assert THRESHOLDS["max_gap_p99_ms"].metric == "max_gap_ms"
    assert THRESHOLDS["ttfe_from_schedule_p95_ms"].stat == "p95"


def test_a_scenario_accepts_exactly_the_tables_thresholds_and_lists_them_when_wrong():
    from sseload.scenario.load import from_dict
    from sseload.scenario.model import ScenarioError

    assert from_dict({"thresholds": {"max_gap_p99_ms": 50}}).thresholds == {"max_gap_p99_ms": 50.0}
    with pytest.raises(ScenarioError, match="known thresholds: abandon_rate_max, answer_ttft_max_ms"):
        from_dict({"thresholds": {"ttfe_p97_ms": 3}})


@pytest.mark.parametrize("name", ["ttfe_p95_ms", "gap_max_ms", "error_rate_max", "min_streams", "min_events_per_s"])
def test_a_threshold_passes_on_its_side_of_the_limit_and_at_it(summary, name):
    actual = THRESHOLDS[name].actual(summary)
    at_most = THRESHOLDS[name].rule == "<="
    step = max(abs(actual) * 0.1, 0.01)
    above, below = actual + step, actual - step
    verdicts = {v.limit: v.passed for v in thresholds.evaluate(summary, {name: above})
                + thresholds.evaluate(summary, {name: below}) + thresholds.evaluate(summary, {name: actual})}
    assert verdicts == {above: at_most, below: not at_most, actual: True}


def test_a_threshold_on_something_not_measured_fails(summary):
    no_events = {k: v for k, v in summary.items() if k != "gap_ms"}
    (verdict,) = thresholds.evaluate(no_events, {"gap_p99_ms": 1e9})
    assert verdict.actual is None and not verdict.passed
    assert "n/a" in thresholds.table([verdict])


def test_the_verdict_table_fits_the_longest_threshold_name(summary):
    lines = thresholds.table(thresholds.evaluate(summary, {"ttfe_from_schedule_p99_ms": 1e6, "min_streams": 1}))
    assert len({line.index(" ", 26) for line in lines.splitlines()[1:]}) == 1  # the columns line up


# --- one rendering ---

def test_every_metric_of_a_summary_is_in_summary_md_with_its_label(summary):
    md = summary_markdown(summary)
    for m in METRICS:
        assert m.label in md, m.key
    for m in LATENCY:
        assert f"| {m.heading} | " in md, m.key
    assert len(md.splitlines()) < 50  # every metric at once: an open-model LLM run with feeds


def test_the_console_summary_keeps_its_lines(summary):
    lines = format_summary({**summary, "embedded_target": True}).splitlines()
    width = len("TTFT to the answer ms") + 1  # the longest row's label
    assert lines[0].startswith("run synthetic: 6 streams in 2.0 s (3.0 streams/s, 12 events/s)")
    assert lines[1] == "outcomes: abandoned 1, cutoff 1, ok 4"
    assert lines[2] == f"{'':<{width}}" + "".join(f"{s:>9}" for s in ("p50", "p90", "p95", "p99", "max"))
    assert [line[:width].rstrip() for line in lines[3:9]] == [
        "TTFT ms", "TTFT to the answer ms", "TPOT ms", "TTFE ms", "gap ms", "duration ms"]
    assert lines[3].split()[2] == f"{summary['ttft_ms']['p50']:.1f}"
    assert lines[9] == ("output tokens 15 (from usage: 6 streams), output token throughput 8 tokens/s, output tokens/s "
                        "per user p50 3 tokens/s, goodput 1.00 streams/s, share meeting the SLOs 33.33%, abandon rate "
                        "16.67%, tokenizer against usage +6.7%; finish_reason stop 5, length 1; 2 conversations, TTFT "
                        "p50 by turn 1: 130.0 ms, 2: 120.0 ms, 3: 135.0 ms")
    assert lines[10].startswith("harness error: event lateness p50 0.0")
    assert lines[10].endswith(" ms (against the target's send times)")
    assert lines[11] == ("feeds: 1, reconnects 0; time to reconnect p50 100.0 ms, p99 100.0 ms; gap across a "
                         "reconnect p50 250.0 ms, p99 250.0 ms; events missed across reconnects 1")
    assert lines[12].startswith("note: 6 events (25.0%) arrived in the same read")
    other = format_summary({**summary, "embedded_target": False}).splitlines()  # any other service
    assert other[10].startswith("delivery delay (network, proxies and harness): event lateness p50")
    assert other[10].endswith("(against the service's send times)")


def plain_sse(summary: dict) -> dict:
    """The summary without its LLM numbers: a run of plain SSE streams."""
    llm = {m.key for m in metrics.LLM_FIRST} | {"output_tokens", "output_tokens_per_s", "goodput", "slo_rate",
                                                  "abandon_rate", "tokenizer_vs_usage", "tokens_from"}
    return {k: v for k, v in summary.items() if k not in llm}


def test_the_console_table_of_an_llm_run_leads_with_ttft_and_tpot_then_ttfe(summary):
    rows = [line for line in format_summary(summary).splitlines() if line[:1].isalpha() and " ms " in line[:23]]
    assert [row[:22].rstrip() for row in rows] == [f"{m.label} {m.unit}" for m in metrics.console_rows(True)]
    assert [m.key for m in metrics.console_rows(True)][:3] == ["ttft_ms", "answer_ttft_ms", "tpot_ms"]


def test_the_console_table_of_plain_sse_shows_the_tables_console_metrics_in_order_ttfe_first(summary):
    lines = format_summary(plain_sse(summary)).splitlines()
    assert lines[2] == f"{'':<14}" + "".join(f"{s:>9}" for s in ("p50", "p90", "p95", "p99", "max"))
    rows = [line for line in lines if line[:1].isalpha() and " ms " in line[:15]]
    assert [row[:14].rstrip() for row in rows] == [f"{m.label} {m.unit}" for m in CONSOLE if m not in metrics.LLM_FIRST]
    assert rows[0].startswith("TTFE ms") and not [line for line in lines if line.startswith("output tokens")]


def test_summary_md_of_an_llm_run_leads_with_ttft_and_its_tokens(summary):
    md = summary_markdown(summary).splitlines()
    table = [line for line in md if line.startswith("| ") and "(" in line]
    assert [line.split(" | ")[0][2:] for line in table[:3]] == [m.heading for m in metrics.LLM_FIRST[:3]]
    assert table[len(metrics.LLM_FIRST)].startswith(f"| {TTFE.heading} |")
    assert md[md.index(table[-1]) + 2].startswith("Tokens: output tokens 15")
    plain = [line for line in summary_markdown(plain_sse(summary)).splitlines() if line.startswith("| ")]
    assert plain[1].startswith(f"| {TTFE.heading} |")  # under the header


def test_the_web_ui_tab_labels_come_from_the_table():
    from sseload.run.webui import rows
    from sseload.views.live import LiveStats

    live = LiveStats()
    live.add_stream("ok", 10.0, np.array([0, 1_000_000, 3_000_000], dtype=np.int64))
    labels = [row["metric"] for row in rows(live, active=1, whole_run=False)]
    assert labels[0] == metrics.ACTIVE_STREAMS
    assert labels[1].startswith(f"{TTFE.label} p50") and f"({TTFE.unit}, last" in labels[1]
    assert labels[2].startswith(f"{metrics.GAP.label} p50")


def test_compare_judges_todays_metrics_in_the_tables_direction():
    judged = {(m.key, stat): m.higher_is_worse for m, stat in COMPARED}
    assert judged == {
        ("ttfe_ms", "p50"): True, ("ttfe_ms", "p95"): True, ("ttfe_ms", "p99"): True, ("gap_ms", "p50"): True,
        ("gap_ms", "p99"): True, ("duration_ms", "p95"): True, ("error_rate", None): True,
        ("cutoff_rate", None): True, ("streams_per_s", None): False, ("events_per_s", None): False,
        ("feed_gap_ms", "p99"): True, ("ttft_ms", "p50"): True, ("ttft_ms", "p95"): True, ("ttft_ms", "p99"): True,
        ("tpot_ms", "p50"): True, ("tpot_ms", "p99"): True, ("output_tokens_per_s", None): False,
        ("goodput", None): False, ("answer_ttft_ms", "p50"): True, ("answer_ttft_ms", "p99"): True,
        ("max_stall_ms", "p99"): True, ("abandon_rate", None): True,
    }


def _label_literals(path: Path) -> list[tuple[int, str]]:
    """String literals (docstrings aside) that spell out a metric's label instead of reading the table."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    labels = [m for m in METRICS if m.label != m.key]  # "streams", "events": also their keys, used as such
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value.strip()
            for m in labels:  # "TTFE", "TTFE (ms)", "TTFE ms", "gap p99", "... event lateness p50 ..."
                after = r"\(|p\d" + (rf"|{re.escape(m.unit)}\b" if m.unit else "")
                spelled = rf"(^|[\s(:]){re.escape(m.label)} ({after})"
                if text in (m.label, m.heading) or re.search(spelled, text):
                    found.append((node.lineno, text))
    return found


def test_a_metric_label_is_written_only_in_the_metric_table():
    """The done-when of issue 17 item 4: a grep for a metric label finds one definition."""
    known: dict[str, set[str]] = {}
    spelled = {}
    for path in sorted((ROOT / "sseload").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "sseload/record/metrics.py":
            continue
        found = [(line, text) for line, text in _label_literals(path) if text not in known.get(rel, set())]
        if found:
            spelled[rel] = found
    assert spelled == {}, "read these labels from sseload.record.metrics"


# --- streams open at a moment ---

def test_active_streams_at_counts_streams_started_and_not_yet_ended():
    streams = pd.DataFrame({"start_ns": [0, 10, 20], "duration_ms": [30e-6, 5e-6, np.nan]})  # ends 30, 15, 20
    assert results.active_streams_at(streams, [0, 10, 14, 15, 20, 29, 30]).tolist() == [1, 2, 2, 1, 1, 1, 0]


def test_throughput_active_streams_are_those_open_at_each_seconds_end(run):
    tp = results.throughput(run.streams, run.events)
    ends = run.streams["start_ns"].min() + (tp["t_s"] + 1) * 1e9
    assert tp["active_streams"].tolist() == results.active_streams_at(run.streams, ends).tolist()
    assert tp["active_streams"].iloc[0] == 4  # at 1 s: all six but the first (0-1.0 s) and the reset (0.4-1.0 s)


# --- `sseload report` stays light ---


def test_most_frequent_errors_group_streams_that_failed_the_same_way():
    import pandas as pd

    from sseload.views.results import top_errors

    texts = ([f'HTTP 500: {{"error": "upstream died", "request_id": "req-{i:04d}"}}' for i in range(5)]
             + [f"HTTP 500: upstream died (trace {i:016x}a) at {1796144140000 + i}" for i in range(8)]
             + ["HTTP 429: APIG.0308 throttled"] * 3)
    streams = pd.DataFrame({"outcome": ["http_error"] * 13 + ["throttled"] * 3, "status": [500] * 13 + [429] * 3,
                            "error_code": [""] * 13 + ["APIG.0308"] * 3, "error": texts})
    rows = top_errors(pd.concat([streams, pd.DataFrame({"outcome": ["ok"] * 4, "status": [200] * 4,
                                                        "error_code": [""] * 4, "error": [""] * 4})]))
    assert [(r["outcome"], r["streams"]) for r in rows] == [("http_error", 8), ("http_error", 5), ("throttled", 3)]
    assert rows[0]["cause"] == "HTTP 500: upstream died (trace <id>) at <n>"
