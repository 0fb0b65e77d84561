"""Harness self-health: the lag that decides "measurement may be skewed" is that of the loop
taking the timestamps (the native reader's thread when it ran, else the event loop)."""

from array import array

import pytest

from sseload.record.health import HealthMonitor, merge_summaries

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_reader_lags_of_this_process")]


def monitor(loop_lag_ms: float, reader_lag_ms: float | None, cpu: float = 50.0) -> HealthMonitor:
    health = HealthMonitor()
    health.lag_ns = array("q", [int(loop_lag_ms * 1e6)] * 200)
    if reader_lag_ms is not None:
        health.reader_lag_ns = array("q", [int(reader_lag_ms * 1e6)] * 200)
    health.seconds = [(0.0, cpu, 10, loop_lag_ms)] * 10
    return health


def test_a_late_reader_thread_skews_the_measurement():
    summary = monitor(loop_lag_ms=0.5, reader_lag_ms=8.0).summary()
    assert summary["skewed"] and summary["reader_lag_p99_ms"] == 8.0
    assert summary["skew_reasons"] == ["reader thread lag p99 8.0 ms > 5 ms"]


def test_event_loop_lag_alone_does_not_when_a_reader_thread_takes_the_timestamps():
    summary = monitor(loop_lag_ms=8.0, reader_lag_ms=0.2).summary()
    assert not summary["skewed"]
    assert summary["loop_lag_p99_ms"] == 8.0  # still reported


def test_without_a_reader_thread_event_loop_lag_decides():
    summary = monitor(loop_lag_ms=8.0, reader_lag_ms=None).summary()
    assert summary["skewed"] and summary["reader_lag_p99_ms"] is None
    assert summary["skew_reasons"] == ["event-loop lag p99 8.0 ms > 5 ms"]


def test_cpu_over_the_limit_skews_it_whatever_the_lags():
    summary = monitor(loop_lag_ms=0.5, reader_lag_ms=0.2, cpu=95.0).summary()
    assert summary["skew_reasons"] == ["harness CPU reached 95% > 90%"]


def test_workers_merge_to_the_worst_lag_and_priority_and_the_sum_of_reads():
    a = {"reader_lag_p99_ms": 0.4, "cpu_max_percent": 50.0, "reader": "native", "reader_reads": 10,
         "reader_stamped": 9, "reader_wakeups": 2, "reader_nice": -10, "skew_reasons": []}
    b = dict(a, reader_lag_p99_ms=7.0, reader_nice=0, skew_reasons=["reader thread lag p99 7.0 ms > 5 ms"])
    merged = merge_summaries([a, b])
    assert merged["reader_lag_p99_ms"] == 7.0 and merged["reader_nice"] == 0
    assert (merged["reader_reads"], merged["reader_stamped"], merged["reader_wakeups"]) == (20, 18, 4)
    assert merged["skewed"] and merged["skew_reasons"] == ["worker 1: reader thread lag p99 7.0 ms > 5 ms"]


def test_workers_merge_whether_the_reader_fed_the_logs_only_if_every_one_did():
    routed, not_routed = {"reader_routes_body": True}, {"reader_routes_body": False}
    assert merge_summaries([routed, routed])["reader_routes_body"] is True
    assert merge_summaries([routed, not_routed])["reader_routes_body"] is False
    assert "reader_routes_body" not in merge_summaries([{"reader": "python"}])
    in_c, refused = {"reader_tls_in_c": True}, {"reader_tls_in_c": False, "reader_tls_in_c_why": "ValueError: x"}
    assert merge_summaries([in_c, in_c])["reader_tls_in_c"] is True
    mixed = merge_summaries([in_c, refused])
    assert (mixed["reader_tls_in_c"], mixed["reader_tls_in_c_why"]) == (False, "ValueError: x")


def test_the_summary_says_how_reads_were_timed():
    from sseload.views.console import read_timing

    native = {"reader_reads": 200, "reader_stamped": 150, "reader_nice": -10, "reader_window_ms": 1.0}
    assert read_timing(native) == "75% of reads timed by the kernel (read every 1 ms), reader thread at nice -10"
    assert read_timing({"reader": "python"}) == "reads timed as they returned, on the event loop"
