"""The gateway contract end to end: every fault and limit of the target, as the harness records it.

Each test runs `sseload run` (real Locust, real target process, loopback) and checks the
recorded outcome, that every started stream is in streams.parquet, and that events received
before a failure are kept.
"""

from __future__ import annotations

import threading

import pytest

from tests.conftest import side_by_side, sseload_run

FORTY = "test_the_default_40s_limit_cuts_on_time"


@pytest.fixture(scope="module", autouse=True)
def forty_second_run(request, tmp_path_factory):
    """The real 40 s cutoff takes 40 s of one idle stream: it runs beside this module's other tests,
    from the module's start, and its test (the module's last) reads it. Only when that test is selected."""
    if not any(item.name == FORTY for item in request.session.items):
        yield None
        return
    tmp, box = tmp_path_factory.mktemp("cutoff40"), {}

    def run() -> None:
        box["result"] = sseload_run(tmp, scenario=scenario({"ttfe_ms": 20, "gap_ms": 100, "events": 1000},
                                                           load={"users": 1, "spawn_rate": 1, "run_time": "1s"}),
                                    timeout=180)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield thread, box
    thread.join(200)  # nothing is left running when the module ends

EVENTS = 10  # the target sends 10 events 5 ms apart, then `event: done`; faults strike at event 5


def scenario(target: dict, stream: dict | None = None, **tables) -> dict:
    out = {
        "stream": {"completion": "event:done", "read_timeout_s": 5.0, **(stream or {})},
        # every stream faults: keep running (no early stop) to see the fault as recorded
        "load": {"users": 2, "spawn_rate": 2, "run_time": "1s", "stop_after_failures": 0},
        "target": {"ttfe_ms": 20, "gap_ms": 5, "events": EVENTS, **target},
    }
    out.update(tables)
    return out


def run_fault(tmp_path, fault: str, target: dict | None = None, stream: dict | None = None, **tables):
    return recorded(sseload_run(tmp_path, scenario=scenario({"faults": {fault: 1.0}, **(target or {})}, stream,
                                                            **tables)))


# faults played with the module's default scenario: run once each, four at a time (see side_runs)
PLAIN_FAULTS = ("reset", "early_close", "error_event", "wrong_content_type", "http_429", "http_500", "http_502",
                "http_503", "gzip", "split", "no_charset", "malformed")
LIMIT = 12 * 1024 * 1024  # the gateway's limit on a request body
SIZES = [1_000, 10_000, 100_000, 1_000_000]  # a size sweep's bodies
#: The runs whose checks no neighbour's load can change (outcomes, counts, sizes, lower bounds on a time),
#: beside the plain faults: name -> (scenario, whether the run writes its report).
OTHER_SIDE_RUNS = {  # the longest first
    "size_sweep": (scenario({}, body={"sizes": SIZES, "kind": "binary"},
                            load={"users": 4, "spawn_rate": 4, "run_time": "2s"}), True),
    "bodies_at_the_limit": (scenario({}, body={"sizes": [1024, LIMIT, LIMIT + 1], "over_limit": "send"},
                                     load={"users": 3, "spawn_rate": 3, "run_time": "2s"}), False),
    "stall_past_the_read_timeout": (scenario({"faults": {"stall": 1.0}, "stall_s": 1.5}, {"read_timeout_s": 0.4}),
                                    False),
    "oversized": (scenario({"faults": {"oversized": 1.0}, "oversized_bytes": 300_000},
                           {"max_event_bytes": 100_000}), False),
    "slow_headers": (scenario({"faults": {"slow_headers": 1.0}, "slow_headers_s": 0.3}), False),
    "bodies_over_the_limit": (scenario({}, body={"sizes": [2048, LIMIT + 1]}), False),
}


@pytest.fixture(scope="module")
def side_runs(tmp_path_factory):
    """``sseload run`` with each of PLAIN_FAULTS on every stream, and each of OTHER_SIDE_RUNS, side by side:
    name -> its RunResult (``recorded`` checks it as run_fault does). Each run is mostly Locust's start-up.
    The runs whose checks time a stream to the tens of milliseconds run alone, in their tests."""
    plan = {**OTHER_SIDE_RUNS, **{fault: (scenario({"faults": {fault: 1.0}}), False) for fault in PLAIN_FAULTS}}

    folders = {name: tmp_path_factory.mktemp(name) for name in plan}  # here: mktemp is not for threads

    def run(name, planned):
        tables, report = planned
        return sseload_run(folders[name], scenario=tables, report=report)

    return side_by_side(plan, run)


def recorded(result):
    """The run's streams, once every started stream is recorded with its events: (streams, result)."""
    streams = result.streams
    assert result.code == (0 if (streams["outcome"] == "ok").any() else 1), result.stderr[-3000:]  # 1: none ok
    assert len(streams) > 0
    assert result.info["streams_started"] == len(streams), "a started stream is missing from streams.parquet"
    assert result.info["streams_recorded"] == len(streams)
    events = result.events
    per_stream = events.groupby("stream_id").size()
    assert (per_stream.reindex(streams["stream_id"], fill_value=0).to_numpy() == streams["events"].to_numpy()).all()
    return streams, result


@pytest.mark.parametrize(
    "fault,outcome,events,status",
    [
        ("reset", "reset", 5, 200),
        ("early_close", "incomplete", 5, 200),
        ("error_event", "event_error", 6, 200),
        ("wrong_content_type", "protocol_error", 0, 200),
        ("http_429", "throttled", 0, 429),
        ("http_500", "http_error", 0, 500),
        ("http_502", "http_error", 0, 502),
        ("http_503", "http_error", 0, 503),
        ("gzip", "ok", EVENTS + 1, 200),
        ("split", "ok", EVENTS + 1, 200),
    ],
)
def test_fault_is_recorded_as_its_outcome_with_events_before_it_kept(side_runs, fault, outcome, events, status):
    streams, _ = recorded(side_runs[fault])
    seen = streams[["outcome", "events", "response_bytes", "reused", "retried", "status", "error"]].to_string()
    assert set(streams["outcome"]) == {outcome}, seen
    assert (streams["events"] == events).all(), seen
    assert (streams["status"] == status).all()


def test_gateway_error_bodies_keep_their_code_and_text(side_runs):
    streams, _ = recorded(side_runs["http_429"])
    row = streams.iloc[0]
    assert row["error_code"] == "APIG.0308"
    assert "throttling threshold" in row["error"] and row["error"].startswith("HTTP 429")


def test_wrong_content_type_is_recorded(side_runs):
    streams, _ = recorded(side_runs["wrong_content_type"])
    assert streams["content_type"].str.startswith("text/html").all()
    assert streams["error"].str.contains("not text/event-stream").all()


def test_missing_charset_is_a_warning_not_an_error(side_runs):
    streams, _ = recorded(side_runs["no_charset"])
    assert set(streams["outcome"]) == {"ok"}
    assert streams["charset_warning"].all()


def test_malformed_lines_are_counted_and_the_stream_goes_on(side_runs):
    streams, _ = recorded(side_runs["malformed"])
    assert set(streams["outcome"]) == {"ok"}
    assert (streams["malformed_events"] >= 3).all()  # unknown field, bad retry, invalid UTF-8
    assert (streams["events"] == EVENTS + 2).all()  # the broken event is still an event


def test_oversized_event_is_a_protocol_error_with_earlier_events_kept(side_runs):
    streams, _ = recorded(side_runs["oversized"])
    assert set(streams["outcome"]) == {"protocol_error"}
    assert streams["error"].str.contains("max_event_bytes=100000").all()
    assert (streams["events"] == 5).all()


def test_short_stall_shows_as_a_long_gap(tmp_path):
    streams, result = run_fault(tmp_path, "stall", target={"stall_s": 0.3})
    assert set(streams["outcome"]) == {"ok"}
    max_gap = result.events.groupby("stream_id")["gap_ms"].max()
    assert (max_gap >= 295).all()


def test_stall_longer_than_the_read_timeout_is_a_timeout(side_runs):
    streams, _ = recorded(side_runs["stall_past_the_read_timeout"])
    assert set(streams["outcome"]) == {"timeout"}
    assert (streams["events"] == 5).all()
    assert streams["error"].str.contains("read_timeout_s").all()


def test_slow_headers_delay_ttfb(side_runs):
    streams, _ = recorded(side_runs["slow_headers"])
    assert set(streams["outcome"]) == {"ok"}
    assert (streams["ttfb_ms"] >= 295).all()


# --- the gateway's limit ---

LONG = {"ttfe_ms": 20, "gap_ms": 50, "events": 200}  # a 10 s stream


def test_stream_past_a_2s_limit_is_cut_on_time_with_its_events_kept(tmp_path):
    result = sseload_run(tmp_path, scenario=scenario(LONG, gateway={"limit_s": 2.0}))
    streams = result.streams
    assert set(streams["outcome"]) == {"cutoff"}, streams[["outcome", "error"]]
    assert ((streams["duration_ms"] - 2000).abs() < 100).all(), streams["duration_ms"]
    assert (streams["events"] >= 35).all()
    assert result.info["streams_started"] == len(streams)


def test_clean_close_at_the_limit_is_also_a_cutoff(tmp_path):
    result = sseload_run(tmp_path, scenario=scenario({**LONG, "cutoff": "close"}, gateway={"limit_s": 2.0}))
    streams = result.streams
    assert set(streams["outcome"]) == {"cutoff"}
    assert ((streams["duration_ms"] - 2000).abs() < 100).all()


def test_no_headers_within_the_limit_is_a_504_cutoff(tmp_path):
    result = sseload_run(tmp_path, scenario=scenario({"faults": {"slow_headers": 1.0}, "slow_headers_s": 5.0},
                                            gateway={"limit_s": 1.0}))
    streams = result.streams
    assert set(streams["outcome"]) == {"cutoff"}
    assert (streams["status"] == 504).all()
    assert ((streams["duration_ms"] - 1000).abs() < 100).all()


def test_the_harness_deadline_bounds_a_stream_the_gateway_never_cuts(tmp_path):
    # the target's own limit is 30 s; the harness believes 1 s and allows 0.5 s of grace
    result = sseload_run(tmp_path, scenario=scenario({**LONG, "limit_s": 30.0}, {"grace_s": 0.5},
                                            gateway={"limit_s": 1.0}))
    streams = result.streams
    assert set(streams["outcome"]) == {"timeout"}
    assert ((streams["duration_ms"] - 1500).abs() < 100).all()
    assert streams["error"].str.contains("harness deadline").all()


# --- request bodies and the 12 MiB limit (LIMIT) ---


def test_bodies_at_the_limit_pass_and_one_byte_over_gets_413(side_runs):
    streams = side_runs["bodies_at_the_limit"].streams
    by_size = streams.groupby("body_bytes")["outcome"].agg(set).to_dict()
    assert by_size[1024] == {"ok"} and by_size[LIMIT] == {"ok"}
    assert by_size[LIMIT + 1] == {"too_large"}
    over = streams[streams["body_bytes"] == LIMIT + 1]
    assert (over["status"] == 413).all() and (over["error_code"] == "APIG.0201").all()


def test_bodies_over_the_limit_are_skipped_before_sending_by_default(side_runs):
    streams = side_runs["bodies_over_the_limit"].streams
    over = streams[streams["body_bytes"] == LIMIT + 1]
    assert len(over) > 0 and set(over["outcome"]) == {"too_large"}
    assert (over["status"] == 0).all() and (over["response_bytes"] == 0).all()
    assert set(streams.loc[streams["body_bytes"] == 2048, "outcome"]) == {"ok"}


def test_a_size_sweep_spreads_over_sizes_and_charts_ttfe_by_size(side_runs):
    result = side_runs["size_sweep"]
    streams = result.streams
    assert sorted(streams["body_bytes"].unique()) == SIZES
    assert set(streams["outcome"]) == {"ok"}
    assert (result.run_dir / "charts" / "ttfe_by_body_size.png").exists()


@pytest.mark.slow
def test_the_default_40s_limit_cuts_on_time(forty_second_run):
    thread, box = forty_second_run
    thread.join(200)
    streams = box["result"].streams
    assert set(streams["outcome"]) == {"cutoff"}
    assert ((streams["duration_ms"] - 40_000).abs() < 100).all(), streams["duration_ms"]
    assert (streams["events"] >= 390).all()
