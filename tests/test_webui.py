"""The "SSE streams" tab in Locust's web UI, looked at in a real browser while a run goes on."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.browser import browser_page
from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def locust_ui(tmp_path, target):
    url = target("--ttfe-ms", "50", "--gap-ms", "10", "--events", "20")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "sse.py"), "-H", url,
         "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "5", "-r", "5",
         "-t", "60s", "--results-dir", str(tmp_path / "res"), "--run-id", "ui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
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
