"""Locust master/worker mode: every worker's streams reach the master's one dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil

from tests.conftest import sseload_run, write_scenario

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


def test_a_worker_killed_mid_run_leaves_a_consistent_dataset_marked_partial(tmp_path):
    scenario = dict(SCENARIO, load={"users": 10, "spawn_rate": 10, "run_time": "8s"})
    path = write_scenario(tmp_path / "s.toml", scenario)
    run_dir = tmp_path / "results" / "k"
    proc = subprocess.Popen([sys.executable, "-m", "sseload", "run", str(path), "--workers", "2",
                             "--results-dir", str(tmp_path / "results"), "--run-id", "k"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=dict(os.environ))
    victim = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.5)
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if "--worker" in child.cmdline() and time.monotonic() > deadline - 26:
                    victim = child
                    break
            except psutil.NoSuchProcess:
                pass
    assert victim is not None, "no worker process found"
    victim.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert (run_dir / "run.json").exists(), err[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["partial"] is True
    assert "worker" in info["partial_reason"]
    streams = consistent(run_dir)
    assert len(streams) > 0 and info["streams_recorded"] == len(streams)
