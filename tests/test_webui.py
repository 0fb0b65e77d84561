"""The "SSE streams" tab in Locust's web UI, looked at in a real browser while a run goes on."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest

from sseload.metrics import OUTPUT_TOKENS_PER_S, TTFT
from tests import servers
from tests.browser import browser_page
from tests.conftest import ROOT

start_server = servers.start_server  # the fixture


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(base: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{base} did not answer within {seconds} s")


@pytest.fixture
def locust_ui(tmp_path, start_server):
    """A Locust web UI on 8 s streams from a service that is not sseload's (80 events, 100 ms apart,
    after a 50 ms first event)."""
    srv = start_server(servers.paced_sse, events=80, gap_s=0.1, first_delay_s=0.05)
    port = free_port()
    with open(tmp_path / "locust.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sse.py"), "-H", srv.url,
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
            [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sse.py"), "-H", url, "--scenario",
             str(scenario), "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "3", "-r", "3",
             "-t", "2s", "--results-dir", str(tmp_path / "res"), "--run-id", "s", "--loglevel", "DEBUG"],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
        )
    base = f"http://127.0.0.1:{port}"
    pages = []
    try:
        wait_for_http(base)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # run and stop (-t 2s)
            with urllib.request.urlopen(base + "/stats/requests", timeout=10) as response:
                if json.load(response)["state"] == "stopped":
                    break
            time.sleep(0.3)
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


def start_locust(tmp_path, url: str, *args: str, log: str = "locust.log") -> subprocess.Popen:
    with open(tmp_path / log, "w") as out:  # a file, not a pipe: an unread pipe would block Locust
        return subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sse.py"), "-H", url,
             "--results-dir", str(tmp_path / "res"), "--run-id", "ui", *args],
            stdout=out, stderr=subprocess.STDOUT, text=True)


def test_the_sse_tab_shows_live_ttft_and_output_tokens_of_an_openai_service(tmp_path, start_server):
    """Through a worker to its master (a plain SSE run's tab has no token rows: tests/test_webui_tokens.py)."""
    srv = start_server(servers.vllm_like_server, prefill_s=0.2, token_s=0.01)
    port, master_port = free_port(), free_port()
    ui = ["--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "3", "-r", "3", "-t", "60s"]
    body = ["--body", json.dumps(LLM_BODY)]
    ui += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
           "--expect-workers", "1"]
    procs = [start_locust(tmp_path, srv.url, *body, "--worker", "--master-host", "127.0.0.1",
                          "--master-port", str(master_port), log="worker.log")]
    procs.append(start_locust(tmp_path, srv.url, *body, *ui))
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
