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

import pytest

from sseload.metrics import OUTPUT_TOKENS_PER_S, TTFT
from sseload.scenario import DEFAULT_PATH
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
def locust_ui(tmp_path, target):
    url = target("--ttfe-ms", "50", "--gap-ms", "10", "--events", "20")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sse.py"), "-H", url + DEFAULT_PATH,
         "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "5", "-r", "5",
         "-t", "60s", "--results-dir", str(tmp_path / "res"), "--run-id", "ui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_http(base)
    yield base, tmp_path / "res" / "ui"
    proc.terminate()
    proc.wait(30)


def test_sse_tab_shows_live_numbers_and_then_the_report(locust_ui):
    base, run_dir = locust_ui
    with browser_page() as page:
        page.goto(base + "/?tab=sseload")
        page.get_by_role("tab", name="SSE streams").click()
        cell = page.locator("td", has_text=re.compile(r"^TTFE p50"))
        cell.wait_for(timeout=30_000)
        deadline = time.monotonic() + 30
        value = ""
        while time.monotonic() < deadline:
            value = page.locator("tr", has=cell).locator("td").nth(1).inner_text()
            if re.match(r"^\d+\.\d / ", value):
                break
            time.sleep(0.5)
        p50 = float(value.split(" / ")[0])
        assert 45 <= p50 <= 80, value  # the target's TTFE is 50 ms
        assert page.locator("td", has_text=re.compile(r"^outcome: ok")).count() == 1
        active = page.locator("tr", has=page.locator("td", has_text="active streams")).locator("td").nth(1)
        assert int(active.inner_text()) >= 1
        # stop the run from the UI; the tab then links to the report
        page.get_by_role("button", name=re.compile("^stop$", re.I)).click()
        page.locator("td", has_text=re.compile(r"^report$")).wait_for(timeout=30_000)
    with urllib.request.urlopen(base + "/sseload/report", timeout=60) as response:
        html = response.read().decode()
    assert "sseload report" in html and "<img" in html
    assert (run_dir / "streams.parquet").exists() and (run_dir / "run.json").exists()


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
             "-t", "4s", "--results-dir", str(tmp_path / "res"), "--run-id", "s", "--loglevel", "DEBUG"],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
        )
    base = f"http://127.0.0.1:{port}"
    pages = []
    try:
        wait_for_http(base)
        time.sleep(6)  # run and stop (-t 4s)
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
    tokens_row = f"{OUTPUT_TOKENS_PER_S.label} ({OUTPUT_TOKENS_PER_S.unit}, completed streams)"
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base)
        rows = rows_once(base, lambda r: re.match(r"^\d+\.\d / ", r.get(ttft_row, "")) and r[tokens_row] != "0")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)
    assert ttft_row in rows, (rows, (tmp_path / "locust.log").read_text()[-2000:])
    p50 = float(rows[ttft_row].split(" / ")[0])
    assert 190 <= p50 <= 400, rows[ttft_row]  # the server's first token comes 200 ms after the request
    assert float(rows[tokens_row]) > 0 and list(rows).index(tokens_row) == list(rows).index(ttft_row) + 1
