"""Shared helpers: real processes on loopback, scenarios written per test."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from array import array
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "sseload" / "run" / "locustfile.py"  # what `sseload locustfile` prints
#: The run key this session's plain Locust masters and workers share (sseload.record.runkey).
RUN_KEY = secrets.token_hex(32)


def with_run_key(env: dict | None = None, key: str = RUN_KEY) -> dict:
    """os.environ (and ``env``) with SSELOAD_RUN_KEY set: what a plain `locust --master`/`--worker` needs."""
    return {**os.environ, **(env or {}), "SSELOAD_RUN_KEY": key}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def write_scenario(path: Path, tables: dict) -> Path:
    lines = []
    for key, value in tables.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {toml_value(value)}")
    for table, values in tables.items():
        if isinstance(values, dict):
            lines.append(f"[{table}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class RunResult:
    def __init__(self, proc: subprocess.CompletedProcess, run_dir: Path, peak_rss_mib: float | None = None) -> None:
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.run_dir = run_dir
        self.peak_rss_mib = peak_rss_mib  # sseload_run(peak_rss=True): its largest process's peak RSS

    @property
    def streams(self) -> pd.DataFrame:
        return pd.read_parquet(self.run_dir / "streams.parquet")

    @property
    def events(self) -> pd.DataFrame:
        return pd.read_parquet(self.run_dir / "events.parquet")

    @property
    def info(self) -> dict:
        return json.loads((self.run_dir / "run.json").read_text())


#: Runs argv[2:] and writes to argv[1] the peak RSS (KiB) of the largest process of its tree (Linux
#: folds a reaped child's peak into its parent's RUSAGE_CHILDREN: the Locust child's reaches here).
PEAK_RSS_WRAPPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
                    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
                    "sys.exit(code)")


def sseload_run(tmp_path: Path, *args: str, scenario: dict | None = None, env: dict | None = None,
                timeout: float = 120, run_id: str = "r", report: bool = False, peak_rss: bool = False) -> RunResult:
    """`sseload run` as a user runs it; without the report (its charts are half of a short run's
    time) unless the test reads it: sseload_reported_run. ``peak_rss``: the result's ``peak_rss_mib``
    is the peak RSS of its largest process (the Locust process, where the load runs)."""
    rss_file = tmp_path / f"{run_id}.peak-rss"
    cmd = [sys.executable, "-c", PEAK_RSS_WRAPPER, str(rss_file)] if peak_rss else []
    cmd += [sys.executable, "-m", "sseload", "run"]
    if scenario is not None:
        cmd.append(str(write_scenario(tmp_path / f"{run_id}.toml", scenario)))
    cmd += ["--results-dir", str(tmp_path / "results"), "--run-id", run_id, *args]
    if not report and "--no-report" not in args:
        cmd.append("--no-report")
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=tmp_path)
    peak = int(rss_file.read_text()) / 1024 if peak_rss else None
    return RunResult(proc, tmp_path / "results" / run_id, peak)


def sseload_reported_run(tmp_path: Path, *args: str, **kw) -> RunResult:
    """`sseload run` with its report (report.html, summary.md/json, charts)."""
    return sseload_run(tmp_path, *args, report=True, **kw)


@pytest.fixture
def no_reader_lags_of_this_process(monkeypatch):
    """A HealthMonitor's lags are the test's own: not those the reader thread of an earlier test in
    this process sampled (on a busy machine its p99 passes the 5 ms bound and skews the verdict)."""
    from sseload.transport import reactor as reactor_module

    monkeypatch.setattr(reactor_module, "take_reader_lags", lambda: b"")


@pytest.fixture
def target(tmp_path):
    """Start the reference target with given flags; yields a function returning its URL."""
    procs = []

    def start(*flags: str, env: dict | None = None) -> str:
        port_file = tmp_path / f"port{len(procs)}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "sseload.target", "--port", "0", "--port-file", str(port_file), *flags],
            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "target did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{port_file.read_text()}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(5)


def started_target(tmp_path: Path, *flags: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """The reference target with given flags, as the ``target`` fixture starts it, for a fixture of a
    wider scope (which stops it): (its process, its URL)."""
    port_file = tmp_path / "target.port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sseload.target", "--port", "0", "--port-file", str(port_file), *flags],
        env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while not port_file.exists():
        assert proc.poll() is None, f"the target stopped with exit code {proc.returncode}"
        assert time.monotonic() < deadline, "target did not start"
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port_file.read_text()}"


def as_if_started_in_the_background() -> None:
    """preexec_fn: SIGINT ignored, as a non-interactive shell leaves it for `cmd &` (CI scripts)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def stopped_early(info: dict, run_time_s: float) -> bool:
    """The run ended well before its run time: the signal stopped it, not the clock."""
    from datetime import datetime

    took = datetime.fromisoformat(info["ended_at"]) - datetime.fromisoformat(info["started_at"])
    return took.total_seconds() < run_time_s / 2


def side_by_side(jobs: dict, run, workers: int = 4) -> dict:
    """``run(key, value)`` for every job, ``workers`` at a time (short `sseload run`s are mostly
    start-up, so four share two cores well): key -> what it returned."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        return dict(zip(jobs, pool.map(run, jobs, jobs.values()), strict=True))


@contextlib.contextmanager
def serving(srvs: dict):
    """Servers a module's fixture started for its runs side by side: stopped when it ends, and a
    handler's unexpected exception fails it (as start_server's does)."""
    try:
        yield srvs
    finally:
        for srv in srvs.values():
            srv.stop()
    errors = [err for srv in srvs.values() for err in srv.errors]
    assert not errors, errors


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(base: str, seconds: float = 30) -> None:
    """Until ``base`` answers HTTP (a server or web UI that is starting)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{base} did not answer within {seconds} s")


def wait_until_stopped(base: str, seconds: float = 30) -> None:
    """Until the Locust web UI at ``base`` says its run has stopped (its -t is over)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with urllib.request.urlopen(base + "/stats/requests", timeout=10) as response:
            if json.load(response)["state"] == "stopped":
                return
        time.sleep(0.3)
    raise AssertionError(f"the run at {base} did not stop within {seconds} s")


class _NotInAUnitTest(RuntimeError):
    """A test marked `unit` reached for a process or a socket: mark it otherwise."""


@pytest.fixture(autouse=True)
def _unit_tests_open_no_socket_and_start_no_process(request, monkeypatch):
    """`unit` means no process and no socket (CONTRIBUTING.md): held, not hoped. A unit test that
    opens a socket or starts a process fails, naming what it did."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return

    def refuse(what):
        def call(*_args, **_kwargs):
            raise _NotInAUnitTest(f"a `unit` test {what}; unit tests use neither: drop the marker")
        return call

    real_init = socket.socket.__init__

    def network_socket(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):
            refuse("opened a network socket")()
        real_init(self, family, type, proto, fileno)  # a socketpair (an event loop's wake-up) is no network

    monkeypatch.setattr(socket.socket, "__init__", network_socket)
    # (the classes, not functions such as os.fork, which gevent's monkey patching would keep a copy of)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("started a process"))
    yield


@pytest.fixture
def start_server():
    """``start_server(factory, *args, **kw)`` starts a server of tests/servers.py's; all are stopped at
    teardown, and a handler's unexpected exception fails the test."""
    started = []

    def start(factory, *args, **kw):
        srv = factory(*args, **kw)
        started.append(srv)
        return srv

    yield start
    for srv in reversed(started):
        srv.stop()
    errors = [err for srv in started for err in srv.errors]
    assert not errors, errors


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair (the reader's real use), client side first."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    client.setblocking(False)
    return client, server


def consistent(run_dir) -> pd.DataFrame:
    """A run's streams, checked: unique ids, and each stream's event count equal to its events' rows."""
    streams = pd.read_parquet(run_dir / "streams.parquet")
    events = pd.read_parquet(run_dir / "events.parquet")
    assert streams["stream_id"].is_unique
    per_stream = events.groupby("stream_id").size().reindex(streams["stream_id"], fill_value=0)
    assert (per_stream.to_numpy() == streams["events"].to_numpy()).all()
    assert set(events["stream_id"]) <= set(streams["stream_id"])
    return streams


MS = 1_000_000


def connection_record(stream_id: int, t0_ms: float, duration_ms: float, outcome, error: str = ""):
    """A feed's connection as the client records it (times in ms from the stream's start)."""
    from sseload.record.records import StreamRecord

    return StreamRecord(
        stream_id=stream_id, worker=0, user=1, t0_perf_ns=int(t0_ms * MS), start_ns=0, scheduled_ns=0,
        connect_ns=-1, upload_ns=0, ttfb_ns=MS, ttfe_ns=2 * MS, duration_ns=int(duration_ms * MS), sign_ns=0,
        auth_fetch_ns=0, status=200, content_type="text/event-stream", charset_warning=False, body_bytes=0,
        response_bytes=100, events=3, malformed_events=0, outcome=outcome, error_code="", error=error, reused=False)


def times_ns(*ms: float) -> array:
    """Event times in ns, as a stream's event buffer holds them."""
    return array("q", [int(t * MS) for t in ms])
