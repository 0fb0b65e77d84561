"""Locust master/worker mode: every worker's streams reach the master's one dataset."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tests.conftest import (
    LOCUSTFILE,
    ROOT,
    RUN_KEY,
    as_if_started_in_the_background,
    consistent,
    sseload_run,
    started_target,
    stopped_early,
    with_run_key,
    write_scenario,
)

SCENARIO = {
    "stream": {"completion": "event:done", "grace_s": 1.0},
    "gateway": {"limit_s": 3.0},
    "load": {"users": 10, "spawn_rate": 10, "run_time": "3s"},
    "target": {"ttfe_ms": 50, "gap_ms": 10, "events": 20},
}


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
    from sseload.views.loading import _read

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # not there yet, or half written
            if len(_read(run_dir, "streams", cut=[])) > 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"no batch reached {run_dir} within {timeout_s:g} s")


def test_two_workers_lose_no_stream(worker_runs):
    result = worker_runs["calm"].result()
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


def orphaned(tmp_path) -> tuple[int, list[list[str]]]:
    """`sseload run` (one worker) itself killed outright (SIGKILL) once it streams: (how many processes it
    had started, the command lines of those still alive 30 s after)."""
    proc = start_run(tmp_path, "60s", 4, 1, "orphan")
    try:
        wait_for_first_batch(tmp_path / "results" / "orphan")
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.kill()
        proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=30)
    left = []
    for orphan in alive:  # never leave them running, even when the test fails
        with contextlib.suppress(psutil.NoSuchProcess):
            left.append(orphan.cmdline())
            orphan.kill()
    return len(children), left


@pytest.fixture(scope="module")
def worker_runs(tmp_path_factory) -> dict:
    """Runs with workers. Disrupted once they stream: a worker killed and a SIGTERM side by side (the checks
    are of what gets recorded, not of timing), then a SIGINT to a whole process group on its own (with the
    others it came before every process had its handler). Run id -> (process, stdout, stderr, run folder).
    Started once those two signals are sent, beside their stopping: an undisturbed run ("calm"), one whose
    sseload is killed outright ("orphan") and a plain master a forged worker reaches ("forged"), each a
    future of what its test reads."""
    tmp = tmp_path_factory.mktemp("disrupted")
    for name in ("killed", "sigterm", "sigint", "calm", "orphan", "forged"):
        (tmp / name).mkdir()
    dirs = {"killed": tmp / "killed" / "results" / "k", "sigterm": tmp / "sigterm" / "results" / "sig",
            "sigint": tmp / "sigint" / "results" / "sig"}
    procs: dict[str, subprocess.Popen] = {}
    out = {}
    try:
        with ThreadPoolExecutor(3) as pool:
            procs["killed"] = start_run(tmp / "killed", "8s", 10, 2, "k")
            procs["sigterm"] = start_run(tmp / "sigterm", "60s", 10, 2, "sig", report=True, start_new_session=True,
                                         preexec_fn=as_if_started_in_the_background)
            for name in ("killed", "sigterm"):
                wait_for_first_batch(dirs[name])
            time.sleep(1.0)
            find_worker(procs["killed"]).send_signal(signal.SIGKILL)
            procs["sigterm"].send_signal(signal.SIGTERM)
            out["calm"] = pool.submit(sseload_run, tmp / "calm", "--workers", "2", scenario=SCENARIO)
            out["orphan"] = pool.submit(orphaned, tmp / "orphan")
            out["forged"] = pool.submit(forged_run, tmp / "forged")
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


def test_a_worker_killed_mid_run_leaves_a_consistent_dataset_marked_partial(worker_runs):
    proc, out, err, run_dir = worker_runs["killed"]
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
def test_a_signal_mid_run_with_workers_flushes_every_stream_marks_partial_and_reports(worker_runs, name, sig):
    proc, out, err, run_dir = worker_runs[name]
    assert proc.returncode == 128 + sig, err[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["partial"] is True and signal.Signals(sig).name in info["partial_reason"]
    assert stopped_early(info, 60)
    streams = consistent(run_dir)
    assert info["streams_started"] == info["streams_recorded"] == len(streams) > 0
    assert set(streams["worker"]) == {0, 1}
    assert (run_dir / "report.html").exists()
    assert "Traceback" not in err


def test_nothing_sseload_started_outlives_it(worker_runs):
    """Even when sseload itself is killed outright, its target, master and workers go too."""
    started, alive = worker_runs["orphan"].result()
    assert started >= 3  # target, master, worker
    assert not alive, alive


FORGED_WORKER, FORGED_STREAMS = 77, 4441  # the forged streams' worker column, and how many (tests/forged_worker.py)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def plain_locust(tmp_path, role_args: list[str], log: str, env: dict) -> subprocess.Popen:
    """`locust -f sseload/locustfile.py` as a user starts a master or a worker by hand."""
    with open(tmp_path / log, "w") as out:  # a file, not a pipe: an unread pipe would block Locust
        return subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
                                 *role_args], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)


FORGED = "intruder_1234"  # the forged worker's node id


def forged_run(tmp_path) -> tuple[str, str, int, object]:
    """A plain Locust master expecting two workers, reached by a real worker with the run key and by
    tests/forged_worker.py: (what the forged worker said, the master's log, its exit code, the run folder)."""
    target, url = started_target(tmp_path, "--events", "3", "--ttfe-ms", "10", "--gap-ms", "50")
    port = free_port()
    master = plain_locust(tmp_path, ["--master", "--headless", "--master-bind-host", "127.0.0.1",
                                     "--master-bind-port", str(port), "--expect-workers", "2", "-u", "2", "-r", "2",
                                     "-t", "3s", "--stop-timeout", "2", "-H", url, "--run-id", "forged"],
                                    "master.log", with_run_key())
    worker = plain_locust(tmp_path, ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "-H", url],
                          "worker.log", with_run_key())
    intruder = subprocess.Popen([sys.executable, str(ROOT / "tests" / "forged_worker.py"), str(port), FORGED,
                                 str(FORGED_WORKER), str(FORGED_STREAMS)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        master.wait(90)
        said = intruder.communicate(timeout=5 if intruder.poll() is None else None)[0]
    finally:
        for proc in (intruder, worker, master):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        target.terminate()
        target.wait(5)
    return said, (tmp_path / "master.log").read_text(), master.returncode, tmp_path / "results" / "forged"


def test_a_forged_worker_without_the_run_key_adds_nothing_and_is_named_lost(worker_runs):
    """A process that reaches the master's port and speaks Locust's RPC as a worker sends forged
    batches and a forged final report (tests/forged_worker.py): refused, counted, logged once, and
    the real worker with the run key is recorded as always."""
    said, master_log, returncode, run_dir = worker_runs["forged"].result()
    forged = FORGED
    assert "sent 5" in said, said[-2000:]
    info = json.loads((run_dir / "run.json").read_text())
    streams = consistent(run_dir)
    assert FORGED_WORKER not in set(streams["worker"]) and len(streams) < FORGED_STREAMS
    assert len(set(streams["worker"])) == 1 and set(streams["outcome"]) <= {"ok", "cancelled"}  # the real one's
    assert info["streams_started"] == info["streams_recorded"] == len(streams) > 0, master_log[-3000:]
    assert info["refused_messages"] == 5  # two batches, two final reports, one live report
    assert info["lost_workers"] == [forged] and info["partial"] is True
    assert returncode == 1  # a lost worker fails the run
    codes = [r["code"] for r in info["partial_reasons"]]
    assert "refused_messages" in codes and "lost_workers" in codes, info["partial_reasons"]
    assert forged in next(r["text"] for r in info["partial_reasons"] if r["code"] == "refused_messages")
    assert master_log.count(f"refused a sseload_batch message from '{forged}'") == 1
    assert master_log.count("sseload: refused a ") == 1, master_log[-3000:]  # once per sender, not per message
    assert RUN_KEY not in master_log  # nor in any file of the run
    assert not [f.name for f in run_dir.rglob("*") if f.is_file() and RUN_KEY.encode() in f.read_bytes()]


@pytest.mark.parametrize("role", ["--master", "--worker"])
def test_a_master_or_worker_without_the_run_key_stops_before_load_saying_how_to_set_it(tmp_path, role):
    """(A worker finds out once it has reached a master: Locust fires `init` only then.)"""
    env = {k: v for k, v in os.environ.items() if k != "SSELOAD_RUN_KEY"}
    port = free_port()
    procs = []
    try:
        if role == "--worker":
            procs.append(plain_locust(tmp_path, ["--master", "--headless", "--master-bind-host", "127.0.0.1",
                                                 "--master-bind-port", str(port), "--expect-workers", "1", "-t", "1s",
                                                 "-H", "http://127.0.0.1:9", "--run-id", "m"],
                                      "master.log", with_run_key()))
        args = [role, "-H", "http://127.0.0.1:9", "--headless", "--master-port", str(port), "--run-id", "w"]
        procs.append(plain_locust(tmp_path, args, "locust.log", env))
        assert procs[-1].wait(60) == 2
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    said = (tmp_path / "locust.log").read_text()
    assert "SSELOAD_RUN_KEY (the run key) is not set" in said and "export SSELOAD_RUN_KEY=" in said, said[-2000:]
    assert not list((tmp_path / "results").rglob("*.parquet"))
