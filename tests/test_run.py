"""`sseload run` and `locust -f sseload/run/locustfile.py` against the reference target, for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from sseload.record.columns import RUN_JSON_FIELDS
from sseload.scenario.model import DEFAULT_PATH
from tests.conftest import LOCUSTFILE, ROOT, side_by_side, sseload_reported_run, sseload_run, started_target


@pytest.fixture(scope="module")
def embedded_default_run(tmp_path_factory):
    """`sseload run` on the embedded target's defaults, with its report, on its own (its TTFE is checked
    to the millisecond)."""
    return sseload_reported_run(tmp_path_factory.mktemp("embedded"), "-t", "3s", "-u", "5", "-r", "5")


@pytest.fixture(scope="module")
def side_runs(tmp_path_factory):
    """The runs whose checks no neighbour's load can change, side by side: name -> RunResult."""
    def fast_events(tmp):  # events 0.1 ms apart: closer than the reader's 1 ms window
        scenario = {"name": "fast-events", "target": {"ttfe_ms": 10, "gap_ms": 0.1, "events": 40}}
        return sseload_reported_run(tmp, "-t", "2s", "-u", "2", "-r", "2", scenario=scenario)

    serve, serve_url = started_target(tmp_path_factory.mktemp("serve"), "--ttfe-ms", "20", "--gap-ms", "5",
                                      "--events", "3")
    jobs = {
        "fast_events": fast_events,
        "in_flight_at_the_end": lambda tmp: sseload_run(tmp, "-t", "1s", "-u", "4", "-r", "4"),
        "unreachable": lambda tmp: sseload_run(tmp, "-t", "1s", "-u", "1", "-H", "http://127.0.0.1:9"),
        "against_sseload_serve": lambda tmp: sseload_run(tmp, "-H", serve_url, "-u", "2", "-t", "1s", "--no-report"),
    }
    folders = {name: tmp_path_factory.mktemp(name) for name in jobs}  # here: mktemp is not for threads
    try:
        yield side_by_side(jobs, lambda name, job: job(folders[name]))
    finally:
        serve.terminate()
        serve.wait(5)


def test_run_on_the_embedded_default_records_streams_and_events(embedded_default_run):
    result = embedded_default_run
    assert result.code == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(result.run_dir)
    streams, events = result.streams, result.events
    assert len(streams) >= 5 and len(events) > 0
    assert set(streams["outcome"]) == {"ok"}
    # the embedded target's TTFE is 200 ms: what users feel is within 5 ms of it
    assert abs(streams["ttfe_ms"].median() - 200.0) < 5.0
    assert (streams["events"] == 51).all()  # 50 events and the closing `event: done`
    info = result.info
    assert info["schema_version"] == 1 and info["streams_recorded"] == len(streams)
    assert info["partial"] is False
    assert set(streams["http_version"]) == {"1.1"}  # as the reference target's status line says
    assert sorted(info) == sorted(name for name, _ in RUN_JSON_FIELDS)  # docs/results-format.md's run.json table
    for name in ("report.html", "summary.md", "summary.json"):
        assert (result.run_dir / name).stat().st_size > 0


def test_summary_printed_matches_the_parquet(embedded_default_run):
    result = embedded_default_run
    streams = result.streams
    p50 = streams["ttfe_ms"].quantile(0.5, interpolation="linear")
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("TTFE ms"))
    assert float(line.split()[2]) == pytest.approx(p50, abs=0.05)
    assert f"{len(streams)} streams" in result.stdout


def test_streams_in_flight_when_the_run_ends_are_finished_not_lost(side_runs):
    result = side_runs["in_flight_at_the_end"]  # its streams last longer than its run
    streams = result.streams
    assert result.info["streams_started"] == len(streams)
    assert set(streams["outcome"]) == {"ok"}  # the stop timeout lets them complete


def test_plain_locust_with_your_own_locustfile_works_headless(tmp_path, target):
    """locustfiles/custom_user.py: an SSEUser whose task builds each request (one of four questions)."""
    url = target("--ttfe-ms", "50", "--gap-ms", "10", "--events", "5")
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "custom_user.py"), "--headless",
         "-u", "3", "-r", "3", "-t", "2s", "-H", url + DEFAULT_PATH, "--results-dir", str(tmp_path / "res"),
         "--run-id", "plain", "--stop-timeout", "5", "--csv", str(tmp_path / "locust")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    run_dir = tmp_path / "res" / "plain"
    assert (run_dir / "run.json").exists(), proc.stderr[-2000:]
    streams = pd.read_parquet(run_dir / "streams.parquet")
    assert len(streams) > 3 and (streams["outcome"] == "ok").all()
    assert streams["body_bytes"].nunique() > 1  # the user's own bodies, not the scenario's
    assert proc.returncode == 0, proc.stderr[-2000:]  # nothing failed: plain Locust exits 0 too
    # and it ends as `sseload run` does: the one summary, the verdict, the report
    assert "outcomes: ok" in proc.stdout and (run_dir / "report.html").exists()
    assert json.loads((run_dir / "summary.json").read_text())["verdict"]["passed"]
    # Locust's own statistics: one entry per stream (its RPS is streams/s), its response time the TTFE
    stats = pd.read_csv(tmp_path / "locust_stats.csv")
    entry = stats[stats["Name"] == "stream (TTFE)"].iloc[0]
    # (the users' last streams, finishing in the stop timeout, may land after Locust's last CSV write)
    assert len(streams) - 3 <= entry["Request Count"] <= len(streams) and entry["Failure Count"] == 0
    assert 45 <= entry["Median Response Time"] <= 80  # the target's TTFE is 50 ms
    info = json.loads((run_dir / "run.json").read_text())
    assert info["target_url"].startswith(url)


def test_unreachable_host_is_connect_error_with_a_clear_message(side_runs):
    result = side_runs["unreachable"]
    streams = result.streams
    assert (streams["outcome"] == "connect_error").all()
    assert "connection refused by 127.0.0.1:9" in streams["error"].iloc[0]
    assert "Traceback" not in result.stderr


def test_no_host_for_plain_locust_says_what_to_do(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
         "-u", "1", "-t", "1s", "--results-dir", str(tmp_path / "res")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env={**os.environ},
    )
    assert proc.returncode == 2
    assert "give -H/--host" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("reader,parser", [("native", "compiled"), ("python", "python")])
def test_both_readers_record_every_stream_and_say_which_read_them(tmp_path, reader, parser):
    if reader == "native":
        pytest.importorskip("sseload._reader", reason="the native reader was not built")
        pytest.importorskip("sseload._sse", reason="the compiled event log was not built")
    scenario = {"name": "readers", "target": {"faults": {"reset": 0.3}, "seed": 1}}  # request 1: reset
    result = sseload_reported_run(tmp_path, "-t", "2s", "-u", "6", "-r", "6", scenario=scenario,
                         env={"SSELOAD_READER": reader, "SSELOAD_PARSER": parser})
    assert result.code in (0, 1), result.stderr
    streams, info = result.streams, result.info
    assert info["streams_started"] == len(streams)
    assert set(streams["outcome"]) == {"ok", "reset"}
    ok = streams[streams["outcome"] == "ok"]
    assert (ok["events"] == 51).all() and abs(ok["ttfe_ms"].median() - 200.0) < 5.0
    reset = streams[streams["outcome"] == "reset"]
    assert (reset["events"] > 0).all()  # the events before the reset are kept
    assert (info["health"]["reader"], info["health"]["parser"]) == (reader, parser)
    said = "of reads timed by the kernel" if reader == "native" else "reads timed as they returned"
    assert said in next(ln for ln in result.stdout.splitlines() if ln.startswith("harness health"))
    assert said in (result.run_dir / "report.html").read_text()
    if reader == "native":  # a read may carry several events; most are timed by the kernel
        health = info["health"]
        assert health["reader_reads"] >= len(streams)
        assert health["reader_reads"] >= health["reader_stamped"] > health["reader_reads"] / 2


def test_events_sent_closer_than_the_read_window_are_counted_as_read_together(side_runs):
    """A service sending faster than the reader's 1 ms window: the summary says how many events
    share a read's time, rather than passing those times off as separate arrivals."""
    result = side_runs["fast_events"]
    assert result.code == 0, result.stderr
    shared = int((result.events["gap_ms"] == 0).sum())
    assert shared > 0
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["events_read_together"] == shared
    assert f"note: {shared} events" in result.stdout


def test_sseload_run_against_sseload_serve_needs_no_path(side_runs):
    result = side_runs["against_sseload_serve"]
    assert result.code == 0, result.stderr[-2000:]
    assert set(result.streams["outcome"]) == {"ok"} and (result.streams["events"] >= 3).all()
