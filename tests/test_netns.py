"""Workers on other hosts, without a shared filesystem: each Locust worker in a network namespace of
its own, joined to the master's namespace (the master and the target) by a veth pair with
addresses from the benchmarking range 198.18.0.0/15. The worker reaches the master (--master-host)
and the target over that routed interface only, writes nothing the master reads, and one worker
is killed mid-run there: the master's dataset stays consistent and names the lost worker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import LOCUSTFILE, consistent, with_run_key

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="network namespaces are Linux's")

PREFIX = f"ssl{uuid.uuid4().hex[:6]}"  # this test's namespaces and links only
MASTER_PORT, TARGET_PORT = 5557, 18080


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@pytest.fixture
def namespaces():
    """(master namespace, [worker namespaces], [the master's address on each worker's link]); deleted after."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("creating network namespaces needs root and iproute2")
    master, workers, made = f"{PREFIX}m", [f"{PREFIX}w{i}" for i in (1, 2)], []
    try:
        for name in (master, *workers):
            ip("netns", "add", name)
            made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as err:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        pytest.skip(f"network namespaces cannot be made here: {err.stderr.strip()}")
    gateways = []
    try:
        for i, worker in enumerate(workers, start=1):
            here, there = f"{PREFIX}a{i}", f"{PREFIX}b{i}"
            ip("link", "add", here, "type", "veth", "peer", "name", there)
            ip("link", "set", here, "netns", master)
            ip("link", "set", there, "netns", worker)
            ip("-n", master, "addr", "add", f"198.18.{i}.1/24", "dev", here)
            ip("-n", worker, "addr", "add", f"198.18.{i}.2/24", "dev", there)
            ip("-n", master, "link", "set", here, "up")
            ip("-n", worker, "link", "set", there, "up")
            gateways.append(f"198.18.{i}.1")
        yield master, workers, gateways
    finally:
        for name in made:  # deleting a namespace deletes the veth ends in it
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def in_ns(name: str, *cmd: str, log, cwd) -> subprocess.Popen:
    """(Master and workers share the run key, as on separate machines the user sets it on each.)"""
    return subprocess.Popen(["ip", "netns", "exec", name, *cmd], stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                            env=with_run_key())


def test_workers_in_their_own_namespaces_reach_the_master_and_the_target_over_a_routed_link(tmp_path, namespaces):
    master_ns, worker_ns, gateways = namespaces
    locustfile = str(LOCUSTFILE)
    procs: list[subprocess.Popen] = []
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("target", "master", "w1", "w2")}  # noqa: SIM115
    try:
        procs.append(in_ns(master_ns, sys.executable, "-m", "sseload.target", "--host", "0.0.0.0", "--port",
                           str(TARGET_PORT), "--ttfe-ms", "20", "--gap-ms", "20", "--events", "25",
                           log=logs["target"], cwd=tmp_path))
        (tmp_path / "master").mkdir()
        procs.append(in_ns(master_ns, sys.executable, "-m", "locust", "-f", locustfile, "--master", "--headless",
                           "--master-bind-host", "0.0.0.0", "--master-bind-port", str(MASTER_PORT),
                           "--expect-workers", "2", "-u", "8", "-r", "8", "-t", "8s", "--stop-timeout", "5",
                           "-H", f"http://{gateways[0]}:{TARGET_PORT}", "--run-id", "ns",
                           log=logs["master"], cwd=tmp_path / "master"))
        workers = []
        for i, (ns, gateway) in enumerate(zip(worker_ns, gateways, strict=True), start=1):
            own = tmp_path / f"w{i}"  # the worker's own folder: nothing in it is read by the master
            own.mkdir()
            workers.append(in_ns(ns, sys.executable, "-m", "locust", "-f", locustfile, "--worker", "--master-host",
                                 gateway, "--master-port", str(MASTER_PORT), "-H", f"http://{gateway}:{TARGET_PORT}",
                                 log=logs[f"w{i}"], cwd=own))
        procs += workers
        run_dir = tmp_path / "master" / "results" / "ns"
        deadline = time.monotonic() + 40
        while not list(run_dir.glob("streams*")) and time.monotonic() < deadline:  # batches arrive
            assert procs[1].poll() is None, (tmp_path / "master.log").read_text()[-3000:]
            time.sleep(0.3)
        time.sleep(1.0)
        workers[1].send_signal(signal.SIGKILL)  # the second host's worker dies mid-run
        code = procs[1].wait(90)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for log in logs.values():
            log.close()
    master_log = (tmp_path / "master.log").read_text()
    info = json.loads((run_dir / "run.json").read_text())
    streams = consistent(run_dir)
    assert len(info["lost_workers"]) == 1 and info["partial"] is True, master_log[-3000:]
    assert code == 1, master_log[-3000:]  # a lost worker fails the run, as with sseload run --workers
    assert info["streams_started"] == info["streams_recorded"] == len(streams) > 10
    assert set(streams["worker"]) == {0, 1}  # both hosts' streams arrived (the dead one's until it died)
    assert streams["outcome"].isin(["ok", "cancelled"]).all()  # the dead worker's open ones never arrived
    assert (run_dir / "report.html").exists()  # the master ends as sseload run does
    assert info["target_url"].startswith(f"http://{gateways[0]}:{TARGET_PORT}")
    for i in (1, 2):  # no results folder on the workers' side holds a stream
        assert not list((tmp_path / f"w{i}").rglob("*.parquet"))
