"""TLS, signals and bad environments: measured the same, failing clearly, losing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import (
    as_if_started_in_the_background,
    side_by_side,
    sseload_reported_run,
    sseload_run,
    started_target,
    stopped_early,
    write_scenario,
)

trustme = pytest.importorskip("trustme")

SCENARIO = {"stream": {"completion": "event:done"}, "load": {"users": 3, "spawn_rate": 3, "run_time": "2s"}}


def tls_flags(tmp_path) -> tuple[list[str], object]:
    """The target's flags for TLS with a certificate of a new CA: (flags, the CA's file)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    flags = ["--tls-cert", str(chain), "--tls-key", str(key), "--ttfe-ms", "30", "--gap-ms", "5", "--events", "10"]
    return flags, ca_file


@pytest.fixture
def https_target(tmp_path, target):
    flags, ca_file = tls_flags(tmp_path)
    return target(*flags).replace("http://", "https://"), ca_file


BUGGY_LOCUSTFILE = (
    "from sseload.protocol.response import Response\n"
    "from sseload.run.user import SSEUser\n"
    "Response.on_headers_complete = lambda self: 1 / 0  # a bug in code the parser calls back\n"
    "class Buggy(SSEUser):\n"
    "    pass\n"
)


def buggy_locustfile_run(tmp_path, url: str):
    """Plain Locust with a custom locustfile whose code the parser calls back raises: its streams."""
    import pandas as pd

    lf = tmp_path / "buggy.py"
    lf.write_text(BUGGY_LOCUSTFILE)
    subprocess.run([sys.executable, "-m", "locust", "-f", str(lf), "--headless", "-u", "1", "-t", "2s",
                    "-H", url, "--results-dir", str(tmp_path / "r"), "--run-id", "bug", "--stop-timeout", "5"],
                   capture_output=True, text=True, timeout=60, cwd=tmp_path)
    return pd.read_parquet(tmp_path / "r" / "bug" / "streams.parquet")


@pytest.fixture(scope="module")
def side_runs(tmp_path_factory):
    """The runs whose checks are of outcomes and what the run says (none times a stream), side by side,
    against targets of their own: name -> RunResult (the buggy locustfile's: its streams)."""
    tmp = tmp_path_factory.mktemp("side")
    flags, ca_file = tls_flags(tmp)
    targets = {name: started_target(tmp_path_factory.mktemp(f"target-{name}"), *target_flags) for name, target_flags
               in {"https": flags, "html": ["--fault", "wrong_content_type=1"],
                   "plain": ["--events", "3", "--ttfe-ms", "5", "--gap-ms", "5"]}.items()}
    https = targets["https"][1].replace("http://", "https://")
    jobs = {
        "insecure": lambda t: sseload_reported_run(t, "-H", https, "--insecure", scenario=SCENARIO),
        "tls_reset": lambda t: sseload_run(t, "-H", https, scenario={
            **SCENARIO, "stream": {"completion": "event:done", "ca_bundle": str(ca_file)},
            "request": {"headers": {"X-Sseload-Fault": "reset"}}}),
        "untrusted": lambda t: sseload_run(t, "-H", https, scenario=SCENARIO),
        "html": lambda t: sseload_run(t, "-H", targets["html"][1], scenario=SCENARIO),
        "buggy_locustfile": lambda t: buggy_locustfile_run(t, targets["plain"][1]),
    }
    folders = {name: tmp_path_factory.mktemp(name) for name in jobs}  # here: mktemp is not for threads
    try:
        yield side_by_side(jobs, lambda name, job: job(folders[name]))
    finally:
        for proc, _ in targets.values():
            proc.terminate()
            proc.wait(10)


def test_tls_streams_are_measured_with_the_ca_bundle(tmp_path, https_target):
    url, ca_file = https_target
    scenario = {**SCENARIO, "stream": {"completion": "event:done", "ca_bundle": str(ca_file)}}
    result = sseload_run(tmp_path, "-H", url, scenario=scenario)
    assert result.code == 0, result.stderr[-2000:]
    streams = result.streams
    assert set(streams["outcome"]) == {"ok"} and (streams["events"] == 11).all()
    assert streams["reused"].any()  # keep-alive works over TLS too
    assert abs(streams["ttfe_ms"].median() - 30) < 5  # the target's --ttfe-ms 30
    assert (streams["response_bytes"] > 11 * 60).all()  # decrypted bytes are counted
    events = result.events
    data_events = events[events["seq"] < 10]  # the closing `event: done` carries no send time
    assert data_events["lateness_ms"].notna().all()  # the target's truth, read from decrypted data
    assert events["lateness_ms"].isna().sum() == len(streams)
    assert result.info["insecure_tls"] is False
    health = result.info["health"]
    if health.get("reader") == "native" and health.get("reader_routes_body"):  # the bodies decrypted in C
        assert health["reader_tls_in_c"] is True and health["reader_tls_reads"] > len(streams), health


def test_a_tls_stream_cut_mid_way_is_a_reset_with_its_events_kept(side_runs):
    streams = side_runs["tls_reset"].streams
    assert set(streams["outcome"]) == {"reset"}, streams["error"].unique()
    assert (streams["events"] == 5).all()  # the events before the cut (the fault strikes at n/2)


def test_an_untrusted_certificate_is_a_clear_connect_error(side_runs):
    streams = side_runs["untrusted"].streams
    assert set(streams["outcome"]) == {"connect_error"}
    assert streams["error"].str.contains("not trusted").all()
    assert streams["error"].str.contains("ca_bundle or use --insecure").all()


def test_insecure_switch_works_and_the_report_says_so(side_runs):
    result = side_runs["insecure"]
    assert set(result.streams["outcome"]) == {"ok"}
    assert result.info["insecure_tls"] is True
    assert "OFF (--insecure)" in (result.run_dir / "report.html").read_text()


@pytest.fixture(scope="module")
def signalled(tmp_path_factory) -> dict:
    """A 60 s run stopped by SIGINT and one by SIGTERM, each 5 s after it started, side by side (what is
    checked is what each recorded): signal -> (its stderr, its run folder)."""
    procs, dirs = {}, {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            tmp = tmp_path_factory.mktemp(sig.name)
            path = write_scenario(tmp / "s.toml", {"stream": {"completion": "event:done"},
                                                   "load": {"users": 5, "spawn_rate": 5, "run_time": "60s"},
                                                   "target": {"ttfe_ms": 20, "gap_ms": 10, "events": 20}})
            procs[sig] = subprocess.Popen([sys.executable, "-m", "sseload", "run", str(path), "--results-dir",
                                           str(tmp / "r"), "--run-id", "sig"], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, cwd=tmp, env=dict(os.environ),
                                          preexec_fn=as_if_started_in_the_background)
            dirs[sig] = tmp / "r" / "sig"
        time.sleep(5)
        for sig, proc in procs.items():
            proc.send_signal(sig)
        return {sig: (proc.communicate(timeout=90)[1], dirs[sig]) for sig, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_run_flushes_every_stream_marks_partial_and_reports(signalled, sig):
    err, run_dir = signalled[sig]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["partial"] is True and signal.Signals(sig).name in info["partial_reason"]
    assert stopped_early(info, 60)
    assert info["streams_started"] == info["streams_recorded"] > 0
    assert (run_dir / "report.html").exists()
    assert "Traceback" not in err


def test_a_results_directory_that_cannot_be_written_fails_before_load(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    result = sseload_run(tmp_path, "--results-dir", str(blocked), scenario=SCENARIO)
    assert result.code == 2
    assert "cannot write results to" in result.stderr and "Traceback" not in result.stderr


def test_a_target_answering_html_is_a_protocol_error_not_a_crash(side_runs):
    assert set(side_runs["html"].streams["outcome"]) == {"protocol_error"}


def test_dns_failure_is_named(tmp_path):
    result = sseload_run(tmp_path, "-H", "http://no-such-host.invalid:8080", scenario=SCENARIO)
    assert result.code == 2
    assert "cannot resolve host 'no-such-host.invalid'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_crash_in_a_custom_locustfile_is_recorded_not_lost(side_runs):
    streams = side_runs["buggy_locustfile"]
    assert len(streams) > 0 and set(streams["outcome"]) == {"harness_error"}
    assert streams["error"].str.contains("ZeroDivisionError").all()


def test_ctrl_c_three_times_abandons_the_run_with_the_signals_exit_code(tmp_path):
    # the ok streams last 30 s (the first Ctrl-C would wait for them); the 500s end at once and
    # are written every second: those batches must survive the abandoned run
    path = write_scenario(tmp_path / "s.toml", {"stream": {"completion": "event:done"},
                                                "load": {"users": 5, "spawn_rate": 5, "run_time": "60s",
                                                         "stop_after_failures": 0},
                                                "target": {"ttfe_ms": 20, "gap_ms": 500, "events": 60,
                                                           "faults": {"http_500": 0.6}, "seed": 1}})
    proc = subprocess.Popen([sys.executable, "-m", "sseload", "run", str(path), "--results-dir",
                             str(tmp_path / "r"), "--run-id", "abandon"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=dict(os.environ),
                            preexec_fn=as_if_started_in_the_background)
    time.sleep(5)
    for _ in range(3):  # the streams last 30 s: the first Ctrl-C would wait for them
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "abandoning the run" in err and "Traceback" not in err
    from sseload.views.results import load

    run = load(tmp_path / "r" / "abandon")  # every batch written before the kill reads back
    assert (run.streams["outcome"] == "http_error").sum() >= 5
    assert any(note.startswith("streams.arrows is a shard still open") for note in run.cut)
