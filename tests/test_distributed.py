"""Locust master/worker mode: every worker's streams reach the master's one dataset."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from tests.conftest import (
    as_if_started_in_the_background,
    sseload_run,
    stopped_early,
    write_scenario,
)

SCENARIO = {
    "stream": {"completion": "event:done", "grace_s": 1.0},
    "gateway": {"limit_s": 3.0},
    "load": {"users": 10, "spawn_rate": 10, "run_time": "3s"},
    "target": {"ttfe_ms": 50, "gap_ms": 10, "events": 20},
}


def consistent(run_dir) -> pd.DataFrame:
    streams = pd.read_parquet(run_dir / "streams.parquet")
    events = pd.read_parquet(run_dir / "events.parquet")
    assert streams["stream_id"].is_unique
    per_stream = events.groupby("stream_id").size().reindex(streams["stream_id"], fill_value=0)
    assert (per_stream.to_numpy() == streams["events"].to_numpy()).all()
    assert set(events["stream_id"]) <= set(streams["stream_id"])
    return streams


def start_run(tmp_path, run_time: str, users: int, workers: int, run_id: str, report: bool = False,
              **popen) -> subprocess.Popen:
    """`sseload run --workers N` in the background, with output captured as text."""
    scenario = dict(SCENARIO, load={"users": users, "spawn_rate": users, "run_time": run_time})
    path = write_scenario(tmp_path / f"{run_id}.toml", scenario)
    return subprocess.Popen([sys.executable, "-m", "sseload", "run", str(path), "--workers", str(workers),
                             "--results-dir", str(tmp_path / "results"), "--run-id", run_id,
                             *([] if report else ["--no-report"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=dict(os.environ), **popen)


def wait_for_first_batch(run_dir, timeout_s: float = 60) -> None:
    """The master writes its first batch once workers stream."""
    from sseload.results import _read

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # not there yet, or half written
            if len(_read(run_dir, "streams", cut=[])) > 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"no batch reached {run_dir} within {timeout_s:g} s")


def test_two_workers_lose_no_stream(tmp_path):
    result = sseload_run(tmp_path, "--workers", "2", scenario=SCENARIO)
    assert result.code == 0, result.stderr[-3000:]
    streams = consistent(result.run_dir)
    info = result.info
    assert info["workers"] == 2
    assert info["streams_started"] == info["streams_recorded"] == len(streams)
    assert set(streams["worker"]) == {0, 1}
    assert set(streams["outcome"]) == {"ok"}
    assert info["partial"] is False


def find_worker(proc: subprocess.Popen, timeout_s: float = 30) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                if "--worker" in child.cmdline():
                    return child
        time.sleep(0.3)
    raise AssertionError("no worker process found")


@pytest.fixture(scope="module")
def disrupted(tmp_path_factory) -> dict[str, tuple[subprocess.Popen, str, str, object]]:
    """Runs with two workers each, disrupted once they stream: a worker killed and a SIGTERM side by
    side (the checks are of what gets recorded, not of timing), then a SIGINT to a whole process group
    on its own (with the others it came before every process had its handler). Run id -> (process,
    stdout, stderr, run folder)."""
    tmp = tmp_path_factory.mktemp("disrupted")
    for name in ("killed", "sigterm", "sigint"):
        (tmp / name).mkdir()
    dirs = {"killed": tmp / "killed" / "results" / "k", "sigterm": tmp / "sigterm" / "results" / "sig",
            "sigint": tmp / "sigint" / "results" / "sig"}
    procs: dict[str, subprocess.Popen] = {}
    out = {}
    try:
        procs["killed"] = start_run(tmp / "killed", "8s", 10, 2, "k")
        procs["sigterm"] = start_run(tmp / "sigterm", "60s", 10, 2, "sig", report=True, start_new_session=True,
                                     preexec_fn=as_if_started_in_the_background)
        for name in ("killed", "sigterm"):
            wait_for_first_batch(dirs[name])
        time.sleep(1.0)
        find_worker(procs["killed"]).send_signal(signal.SIGKILL)
        procs["sigterm"].send_signal(signal.SIGTERM)
        out.update({name: (procs[name], *procs[name].communicate(timeout=180), dirs[name])
                    for name in ("killed", "sigterm")})
        procs["sigint"] = start_run(tmp / "sigint", "60s", 10, 2, "sig", report=True, start_new_session=True,
                                    preexec_fn=as_if_started_in_the_background)
        wait_for_first_batch(dirs["sigint"])
        time.sleep(1.0)
        os.killpg(procs["sigint"].pid, signal.SIGINT)
        out["sigint"] = (procs["sigint"], *procs["sigint"].communicate(timeout=180), dirs["sigint"])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return out


def test_a_worker_killed_mid_run_leaves_a_consistent_dataset_marked_partial(disrupted):
    proc, out, err, run_dir = disrupted["killed"]
    assert (run_dir / "run.json").exists(), err[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["partial"] is True
    assert "worker" in info["partial_reason"]
    streams = consistent(run_dir)
    assert len(streams) > 0 and info["streams_recorded"] == len(streams)
    # a lost worker fails the run, named on the console, and run.json counts what the master recorded
    assert proc.returncode == 1 and len(info["lost_workers"]) == 1
    assert info["lost_workers"][0] in err and "stopped without their final report" in err
    assert info["streams_started"] == info["streams_recorded"] == sum(info["outcomes"].values())


@pytest.mark.parametrize("name, sig", [("sigterm", signal.SIGTERM), ("sigint", signal.SIGINT)])
def test_a_signal_mid_run_with_workers_flushes_every_stream_marks_partial_and_reports(disrupted, name, sig):
    proc, out, err, run_dir = disrupted[name]
    assert proc.returncode == 128 + sig, err[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["partial"] is True and signal.Signals(sig).name in info["partial_reason"]
    assert stopped_early(info, 60)
    streams = consistent(run_dir)
    assert info["streams_started"] == info["streams_recorded"] == len(streams) > 0
    assert set(streams["worker"]) == {0, 1}
    assert (run_dir / "report.html").exists()
    assert "Traceback" not in err


def test_nothing_sseload_started_outlives_it(tmp_path):
    """Even when sseload itself is killed outright, its target, master and workers go too."""
    proc = start_run(tmp_path, "60s", 4, 1, "orphan")
    wait_for_first_batch(tmp_path / "results" / "orphan")
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 3  # target, master, worker
    proc.kill()
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=30)
    for orphan in alive:  # never leave them running, even when the test fails
        orphan.kill()
    assert not alive, [p.cmdline() for p in alive]
