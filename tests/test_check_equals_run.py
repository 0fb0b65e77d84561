"""`sseload check RUN` gives the verdict and exit code the run itself gave, whatever decided it.

A catalogue of small real runs against servers of tests/servers.py (none of them sseload's own
target): all ok, all failing, half failing under an error-rate threshold, thresholds met, a run that
stopped itself in a failure storm, one stopped by Ctrl-C, one that lost a worker, and a plain
Locust master that refused a forged worker's messages. Each is judged again from its folder alone.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from tests import servers
from tests.conftest import LOCUSTFILE, ROOT, free_port, sseload_run, with_run_key, write_scenario

QUICK = {"users": 2, "spawn_rate": 10, "run_time": "1s"}
SHORT_STREAMS = {"limit_s": 3.0}  # the stop timeout is the limit plus the grace: a stop waits little


def half_failing() -> servers.ScriptedServer:
    """Every other request answered 500, the others with two SSE events."""
    count = itertools.count()

    def respond(conn, _req) -> bool:
        if next(count) % 2:
            conn.send_response(500, b'{"error_code":"X.1","error_msg":"no"}', {"Content-Type": "application/json"})
        else:
            servers.send_sse(conn, 2)
        return True

    return servers.ScriptedServer(lambda conn: servers.serve_keepalive(conn, respond), name="half-failing")


def run_folder(tmp: Path, name: str) -> Path:
    return tmp / name / "results" / name


def started(tmp: Path, name: str, scenario: dict, *args: str) -> subprocess.Popen:
    """`sseload run` in the background (for runs that something disrupts)."""
    (tmp / name).mkdir()
    path = write_scenario(tmp / name / f"{name}.toml", scenario)
    return subprocess.Popen([sys.executable, "-m", "sseload", "run", str(path), "--results-dir",
                             str(tmp / name / "results"), "--run-id", name, "--no-report", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp / name)


def wait_for_streams(run_dir: Path, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    """Until a first batch of streams is in the run's folder."""
    deadline = time.monotonic() + timeout_s
    while not list(run_dir.glob("streams*")):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"no stream reached {run_dir}"
        time.sleep(0.2)


def interrupted(tmp: Path, url: str) -> tuple[int, Path]:
    proc = started(tmp, "interrupted", {"stream": {"completion": "auto"}, "gateway": SHORT_STREAMS,
                                        "load": {**QUICK, "run_time": "60s"}}, "-H", url)
    run_dir = run_folder(tmp, "interrupted")
    wait_for_streams(run_dir, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    return proc.returncode, run_dir


def lost_worker(tmp: Path, url: str) -> tuple[int, Path]:
    proc = started(tmp, "lost", {"stream": {"completion": "auto"}, "gateway": SHORT_STREAMS,
                                 "load": {**QUICK, "users": 4, "run_time": "8s"}}, "-H", url, "--workers", "2")
    run_dir = run_folder(tmp, "lost")
    wait_for_streams(run_dir, proc)
    worker = next(child for child in psutil.Process(proc.pid).children(recursive=True)
                  if "--worker" in child.cmdline())
    worker.kill()
    proc.communicate(timeout=180)
    return proc.returncode, run_dir


def forged_worker(tmp: Path, url: str) -> tuple[int, Path]:
    """A plain Locust master (its exit code is the verdict's too) reached by a forged worker as well as
    a real one: the forged one's messages are refused, and it is named lost."""
    folder = tmp / "forged"
    folder.mkdir()
    port = free_port()

    def locust(*args: str, log: str) -> subprocess.Popen:
        with open(folder / log, "w") as out:
            return subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args], stdout=out,
                                    stderr=subprocess.STDOUT, cwd=folder, env=with_run_key())

    master = locust("--master", "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                    "--expect-workers", "2", "-u", "2", "-r", "2", "-t", "2s", "--stop-timeout", "2", "-H", url,
                    "--results-dir", str(folder / "results"), "--run-id", "forged", log="master.log")
    worker = locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "-H", url,
                    log="worker.log")
    intruder = subprocess.Popen([sys.executable, str(ROOT / "tests" / "forged_worker.py"), str(port), "intruder_1",
                                 "77", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        master.wait(120)
    finally:
        for proc in (intruder, worker, master):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return master.returncode, folder / "results" / "forged"


def checked(run_dir: Path) -> subprocess.CompletedProcess:
    """`sseload check` on a run's folder, as a user runs it after the run."""
    return subprocess.run([sys.executable, "-m", "sseload", "check", str(run_dir)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> dict[str, tuple[int, int, Path, subprocess.CompletedProcess]]:
    """name -> (the exit code the run was expected to give, the one it gave, its folder, `sseload check` on
    that folder). Each run is judged again as soon as it ends, beside the runs still going."""
    tmp = tmp_path_factory.mktemp("catalogue")
    ok, failing, half = servers.paced_sse(events=2), servers.status_server(500), half_failing()
    fast_storm = {"stop_after_failures": 0, "failure_backoff_s": 0.0}

    def plain(name: str, url: str, **tables) -> tuple[int, Path]:
        (tmp / name).mkdir()
        scenario = {"stream": {"completion": "auto"}, **tables, "load": {**QUICK, **tables.get("load", {})}}
        result = sseload_run(tmp / name, "-H", url, scenario=scenario, run_id=name)
        return result.code, result.run_dir

    def run_and_check(job) -> tuple[int, Path, subprocess.CompletedProcess]:
        code, run_dir = job()
        return code, run_dir, checked(run_dir)

    jobs = {  # the longest first (a lost worker is noticed late, a plain master waits for its workers)
        "lost_worker": (1, lambda: lost_worker(tmp, ok.url)),
        "refused_messages_and_a_lost_worker": (1, lambda: forged_worker(tmp, ok.url)),
        "interrupted": (128 + signal.SIGINT, lambda: interrupted(tmp, ok.url)),
        "stopped_early_by_a_failure_storm": (2, lambda: plain("storm", failing.url,
                                                              load={"stop_after_failures": 3, "run_time": "30s"})),
        "all_ok": (0, lambda: plain("all_ok", ok.url)),
        "all_failing": (1, lambda: plain("all_failing", failing.url, load=fast_storm)),
        "half_failing_over_its_threshold": (1, lambda: plain("half", half.url, thresholds={"error_rate_max": 0.1})),
        "thresholds_met": (0, lambda: plain("met", ok.url, thresholds={"min_streams": 1, "error_rate_max": 0.5})),
    }
    try:
        with ThreadPoolExecutor(4) as pool:  # short runs are mostly start-up: four share two cores
            futures = {name: (expected, pool.submit(run_and_check, job)) for name, (expected, job) in jobs.items()}
            return {name: (expected, *future.result()) for name, (expected, future) in futures.items()}
    finally:
        for srv in (ok, failing, half):
            with contextlib.suppress(Exception):
                srv.stop()


CASES = ["all_ok", "all_failing", "half_failing_over_its_threshold", "thresholds_met",
         "stopped_early_by_a_failure_storm", "interrupted", "lost_worker", "refused_messages_and_a_lost_worker"]


@pytest.mark.parametrize("name", CASES)
def test_check_gives_the_exit_code_the_run_gave(catalogue, name):
    expected, code, _, check = catalogue[name]
    assert code == expected, f"{name}: the run gave {code}"
    assert check.returncode == code, check.stdout[-2000:] + check.stderr[-2000:]
    assert "Traceback" not in check.stderr


def test_check_says_why_the_run_failed_as_the_run_did(catalogue):
    check = catalogue["stopped_early_by_a_failure_storm"][3]
    assert "sseload: stopped early: the first 3 streams all failed the same way" in check.stderr
    check = catalogue["lost_worker"][3]
    assert "worker(s) stopped without their final report" in check.stderr
