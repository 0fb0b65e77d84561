"""The "SSE streams" tab in Locust's web UI, looked at in a real browser while a run goes on."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pandas as pd
import psutil
import pytest

from sseload.record.metrics import OUTPUT_TOKENS_PER_S, TTFT
from tests import servers
from tests.browser import browser_page
from tests.conftest import LOCUSTFILE, free_port, wait_for_http, wait_until_stopped, with_run_key


@pytest.fixture
def locust_ui(tmp_path, start_server):
    """A Locust web UI on 8 s streams from a service that is not sseload's (80 events, 100 ms apart,
    after a 50 ms first event)."""
    srv = start_server(servers.paced_sse, events=80, gap_s=0.1, first_delay_s=0.05)
    port = free_port()
    with open(tmp_path / "locust.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "-H", srv.url,
             "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "5", "-r", "5",
             "-t", "60s", "--results-dir", str(tmp_path / "res"), "--run-id", "ui"],
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )
    base = f"http://127.0.0.1:{port}"
    wait_for_http(base)
    yield base, tmp_path / "res" / "ui"
    proc.terminate()
    proc.wait(30)


def cell(page, prefix: str):
    """The value cell of the tab's row whose name starts with ``prefix``."""
    name = page.locator("td", has_text=re.compile("^" + re.escape(prefix)))
    return page.locator("tr", has=name).locator("td").nth(1)


def value_once(page, prefix: str, pattern: str, seconds: float = 30) -> str:
    deadline, value = time.monotonic() + seconds, ""
    while time.monotonic() < deadline:
        if cell(page, prefix).count():
            value = cell(page, prefix).inner_text()
            if re.match(pattern, value):
                return value
        time.sleep(0.25)
    raise AssertionError(f"{prefix!r} never matched {pattern!r} (last {value!r})")


def test_sse_tab_is_live_while_streams_are_open_and_keeps_the_run_after_stop_and_reload(locust_ui, tmp_path):
    base, run_dir = locust_ui
    with browser_page() as page:
        page.goto(base + "/")  # as a person comes: Locust's page, then the tab
        page.get_by_role("tab", name="SSE streams").click()
        # live while every stream is still open: its first event and events count as they arrive
        ttfe = value_once(page, "TTFE p50", r"^\d+\.\d / ")
        assert cell(page, "streams finished").inner_text() == "0", "the numbers came from ended streams"
        assert 45 <= float(ttfe.split(" / ")[0]) <= 80, ttfe  # the server's first event comes after 50 ms
        events_per_s = float(value_once(page, "events/s", r"^[1-9]\d*$"))
        assert 20 <= events_per_s <= 60, events_per_s  # 5 open streams of 10 events/s
        gap_p50 = float(value_once(page, "gap p50", r"^\d+\.\d / ").split(" / ")[0])
        assert 95 <= gap_p50 <= 110, gap_p50
        assert int(cell(page, "active streams").inner_text()) == 5
        assert cell(page, "streams finished").inner_text() == "0"
        # the live charts (ECharts, from the package) draw the history
        page.locator("#sseload-chart-ttfe_ms canvas").wait_for(timeout=15_000)
        assert page.locator(".sseload-chart canvas").count() >= 5
        page.screenshot(path=str(tmp_path / "tab-live.png"), full_page=True)
        # the report link is a real link to a new tab
        link = page.locator("a#sseload-report")
        assert link.get_attribute("target") == "_blank"
        with page.context.expect_page(timeout=90_000) as opened:
            link.click()
        report = opened.value
        report.wait_for_load_state(timeout=90_000)
        assert report.title().startswith("sseload report")
        report.close()
        # stop: the tab shows the whole run, and still does after a reload
        page.get_by_role("button", name=re.compile("^stop$", re.I)).click()
        whole = value_once(page, "TTFE p50 / p95 / p99 (ms, whole run)", r"^\d+\.\d / ")
        page.reload()
        page.get_by_role("tab", name="SSE streams").click()
        assert value_once(page, "TTFE p50 / p95 / p99 (ms, whole run)", r"^\d+\.\d / ") == whole
        assert int(value_once(page, "outcome: cancelled", r"^\d+ ").split()[0]) >= 1
        page.locator("#sseload-chart-ttfe_ms canvas").wait_for(timeout=15_000)
        page.screenshot(path=str(tmp_path / "tab-after-reload.png"), full_page=True)
    with urllib.request.urlopen(base + "/sseload/report", timeout=90) as response:  # the stopped run's report
        assert "sseload report" in response.read().decode()
    info = json.loads((run_dir / "run.json").read_text())
    # the report opened mid-run was a snapshot: the run it came from is not partial for it, nor
    # did drawing it (in a child process) hold the event loop
    assert info["partial"] is False, info["partial_reason"]
    assert info["started_at"] < info["ended_at"]
    health = pd.read_parquet(run_dir / "health.parquet")
    assert health["loop_lag_max_ms"].max() < 500, health["loop_lag_max_ms"].max()


def test_the_web_ui_never_shows_a_secret(tmp_path, target):
    secret = "Sk-5ecret-in-the-ui-0007"
    url = target("--events", "5", "--ttfe-ms", "10", "--gap-ms", "5", env={"SSELOAD_TARGET_AKSK": f"AKUI:{secret}"})
    scenario = tmp_path / "aksk.toml"
    scenario.write_text('[auth]\nmethod = "aksk"\n[stream]\ncompletion = "event:done"\n')
    port = free_port()
    env = {**__import__("os").environ, "SSELOAD_AK": "AKUI", "SSELOAD_SK": secret}
    # a file, not a pipe: DEBUG logs would fill an unread pipe and block Locust (the child keeps its own copy)
    with open(tmp_path / "locust.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "-H", url, "--scenario",
             str(scenario), "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "3", "-r", "3",
             "-t", "2s", "--results-dir", str(tmp_path / "res"), "--run-id", "s", "--loglevel", "DEBUG"],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
        )
    base = f"http://127.0.0.1:{port}"
    pages = []
    try:
        wait_for_http(base)
        wait_until_stopped(base)  # run and stop (-t 2s)
        for path in ("/", "/stats/requests", "/stats/report", "/sseload/report", "/logs"):
            try:
                with urllib.request.urlopen(base + path, timeout=60) as response:
                    pages.append(response.read().decode("utf-8", "replace"))
            except urllib.error.HTTPError as err:
                pages.append(err.read().decode("utf-8", "replace"))
    finally:
        proc.terminate()
        proc.wait(60)
    out = (tmp_path / "locust.log").read_text()
    assert any("sseload report" in p for p in pages)
    assert not [p[:80] for p in pages if secret in p]
    assert secret not in out
    for path in (tmp_path / "res").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path.name


LLM_BODY = {"model": "m", "messages": [{"role": "user", "content": "tell me a story"}], "max_tokens": 24,
            "stream": True, "stream_options": {"include_usage": True}}


def tab_rows(base: str) -> dict[str, str]:
    """The SSE streams tab's rows as the web UI polls them (/stats/requests' extended_stats)."""
    with urllib.request.urlopen(base + "/stats/requests", timeout=10) as response:
        doc = json.load(response)
    (tab,) = [s for s in doc.get("extended_stats", []) if s["key"] == "sseload"]
    return {row["metric"]: row["value"] for row in tab["data"]}


def rows_once(base: str, done, seconds: float = 30) -> dict[str, str]:
    """The tab's rows once ``done(rows)`` holds (or, past ``seconds``, as they were last)."""
    deadline, rows = time.monotonic() + seconds, {}
    while time.monotonic() < deadline:
        rows = tab_rows(base)
        if done(rows):
            break
        time.sleep(0.5)
    return rows


def latency_row(metric) -> str:
    return f"{metric.label} p50 / p95 / p99 ({metric.unit}, last 10 s)"


def start_locust(tmp_path, url: str, *args: str, log: str = "locust.log", env: dict | None = None) -> subprocess.Popen:
    with open(tmp_path / log, "w") as out:  # a file, not a pipe: an unread pipe would block Locust
        return subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "-H", url,
             "--results-dir", str(tmp_path / "res"), "--run-id", "ui", *args],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=env)


def test_the_sse_tab_shows_live_ttft_and_output_tokens_of_an_openai_service(tmp_path, start_server):
    """Through a worker to its master (a plain SSE run's tab has no token rows: tests/test_webui_tokens.py)."""
    srv = start_server(servers.vllm_like_server, prefill_s=0.2, token_s=0.01)
    port, master_port = free_port(), free_port()
    ui = ["--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "3", "-r", "3", "-t", "60s"]
    body = ["--body", json.dumps(LLM_BODY)]
    ui += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
           "--expect-workers", "1"]
    procs = [start_locust(tmp_path, srv.url, *body, "--worker", "--master-host", "127.0.0.1",
                          "--master-port", str(master_port), log="worker.log", env=with_run_key())]
    procs.append(start_locust(tmp_path, srv.url, *body, *ui, env=with_run_key()))
    ttft_row = latency_row(TTFT)
    tokens_row = f"{OUTPUT_TOKENS_PER_S.label} ({OUTPUT_TOKENS_PER_S.unit}, last 10 s)"
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base)
        rows = rows_once(base, lambda r: re.match(r"^\d+\.\d / ", r.get(ttft_row, "")) and r[tokens_row] != "0")
        # the report mid-run on the master is a snapshot: no worker is lost for it, and it says so
        with urllib.request.urlopen(base + "/sseload/report", timeout=90) as response:
            assert "sseload report" in response.read().decode()
        info = json.loads((tmp_path / "res" / "ui" / "run.json").read_text())
        assert [r["code"] for r in info["partial_reasons"]] == ["running"] and info["lost_workers"] == []
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)
    assert ttft_row in rows, (rows, (tmp_path / "locust.log").read_text()[-2000:])
    p50 = float(rows[ttft_row].split(" / ")[0])
    assert 190 <= p50 <= 400, rows[ttft_row]  # the server's first token comes 200 ms after the request
    assert float(rows[tokens_row]) > 0 and list(rows).index(tokens_row) == list(rows).index(ttft_row) + 1


def sseload_locustfile(tmp_path, *args: str, log: str = "locust.log") -> subprocess.Popen:
    """`locust -f sseload/locustfile.py` (what `sseload locustfile` prints), output to a file."""
    with open(tmp_path / log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
                                 "--results-dir", str(tmp_path / "res"), *args],
                                stdout=out, stderr=subprocess.STDOUT, text=True)


def listening_addresses(pid: int, port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def other_address() -> str | None:
    """An IPv4 address of this machine's that is not loopback, if it has one."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


@pytest.mark.parametrize("web_host, listens_on, warned", [(None, "127.0.0.1", False), ("0.0.0.0", "0.0.0.0", True)])
def test_the_web_ui_listens_on_loopback_unless_web_host_says_otherwise_and_then_says_how_to_protect_it(
        tmp_path, web_host, listens_on, warned):
    port = free_port()
    chosen = [] if web_host is None else ["--web-host", web_host]
    proc = sseload_locustfile(tmp_path, "-H", "http://127.0.0.1:9", "--web-port", str(port), *chosen)  # no load
    try:
        wait_for_http(f"http://127.0.0.1:{port}")
        assert listening_addresses(proc.pid, port) == {listens_on}
        elsewhere = other_address()
        if elsewhere is not None:  # from another interface: refused unless asked for
            with socket.socket() as sock:
                sock.settimeout(5)
                assert sock.connect_ex((elsewhere, port)) == (0 if warned else 111)
    finally:
        proc.terminate()
        proc.wait(30)
    said = (tmp_path / "locust.log").read_text()
    assert ("with no authentication: anyone who reaches it can start load" in said) is warned, said[-2000:]
    if warned:
        assert f"ssh -L {port}:127.0.0.1:{port}" in said and "private network" in said


@pytest.mark.parametrize("web_host, warned", [
    ("127.0.0.1", False), ("127.0.0.2", False), ("localhost", False), ("::1", False), ("[::1]", False),
    ("", True), ("*", True), ("0.0.0.0", True), ("::", True), ("10.1.2.3", True), ("ui.example", True)])
def test_only_a_web_ui_on_loopback_goes_without_the_warning(web_host, warned):
    from sseload.run.webui import exposure_warning

    assert bool(exposure_warning(web_host, 8089)) is warned


@pytest.fixture(scope="module")
def stopped_ui_run(tmp_path_factory):
    """A web UI (sseload's locustfile) whose short run has stopped: (base URL, run folder, process)."""
    tmp = tmp_path_factory.mktemp("ui-report")
    port_file = tmp / "target-port"
    target = subprocess.Popen([sys.executable, "-m", "sseload.target", "--port", "0", "--port-file", str(port_file),
                               "--events", "5", "--ttfe-ms", "10", "--gap-ms", "20"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    proc = None
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc = sseload_locustfile(tmp, "-H", f"http://127.0.0.1:{port_file.read_text()}", "--web-port", str(port),
                                  "--autostart", "-u", "2", "-r", "2", "-t", "2s", "--run-id", "ui")
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base)
        wait_until_stopped(base)
        yield base, tmp / "res" / "ui", proc
    finally:
        for child in (proc, target):
            if child is not None:
                child.terminate()
                child.wait(30)


def test_concurrent_report_requests_draw_one_report_at_a_time_and_each_reader_gets_all_of_it(stopped_ui_run):
    base, run_dir, proc = stopped_ui_run
    drawing: set[int] = set()  # `sseload report` children seen
    most = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most
        while not done.is_set():
            now = set()
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if "report" in child.cmdline():
                        now.add(child.pid)
                except psutil.NoSuchProcess:
                    pass
            drawing.update(now)
            most = max(most, len(now))
            time.sleep(0.02)

    readers = 6
    start = threading.Barrier(readers)
    bodies: list[str] = [""] * readers

    def read(i: int) -> None:
        start.wait()
        with urllib.request.urlopen(base + "/sseload/report", timeout=180) as response:
            bodies[i] = response.read().decode()

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=read, args=(i,)) for i in range(readers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
    finally:
        done.set()
        watcher.join()
    assert [b.rstrip().endswith("</html>") and "sseload report" in b for b in bodies] == [True] * readers
    assert most == 1, f"{most} reports were drawn at once"
    assert 1 <= len(drawing) <= 2, drawing  # those who came while one was drawn were given it
    assert not list(run_dir.glob(".*.tmp"))


def test_a_report_is_replaced_whole_so_a_reader_of_the_old_one_never_sees_it_cut(stopped_ui_run):
    """report.html, summary.* and the charts are written aside and renamed into place: a reader who
    opened the old file keeps all of it (one being written in place would be cut under them)."""
    _, run_dir, _ = stopped_ui_run

    def report() -> None:
        subprocess.run([sys.executable, "-m", "sseload", "report", str(run_dir)], check=True, capture_output=True,
                       timeout=180)

    if not (run_dir / "report.html").exists():
        report()
    paths = [run_dir / "report.html", run_dir / "summary.md", run_dir / "summary.json",
             *sorted((run_dir / "charts").glob("*.png"))]
    held = {path: open(path, "rb") for path in paths}  # noqa: SIM115
    try:
        old = {path: os.fstat(f.fileno()).st_size for path, f in held.items()}
        report()
        for path, f in held.items():
            assert os.fstat(f.fileno()).st_ino != path.stat().st_ino, f"{path.name} was rewritten in place"
            assert len(f.read()) == old[path] > 0
    finally:
        for f in held.values():
            f.close()
    assert (run_dir / "report.html").read_text().rstrip().endswith("</html>")
    assert not list(run_dir.rglob(".*.tmp"))
