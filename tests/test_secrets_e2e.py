"""No credential is written or shown, however it was given (issue 28's first trust boundary).

Credentials go in every way a user gives them, to `sseload run` and to `locust -f` with its web
UI, against a server that is not sseload's: it fails every other request with an error body
echoing the request head (as many gateways and frameworks do), and streams the others. Then
every file of the run, Locust's own outputs, the console and the web UI's pages are searched for
each secret value and its encodings; the counts are the server's.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests import servers
from tests.conftest import (
    LOCUSTFILE,
    free_port,
    serving,
    side_by_side,
    sseload_reported_run,
    wait_for_http,
    wait_until_stopped,
)

EVENTS = 3


def echoing_server(start_server):
    """Even requests: a 500 whose text body is the request head as received; odd ones: 3 events."""
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def respond(conn: servers.Conn, req: servers.Request) -> bool:
        with lock:
            fail = (counts["ok"] + counts["failed"]) % 2 == 0
            counts["failed" if fail else "ok"] += 1
        if fail:
            conn.send_response(500, b"upstream rejected the request:\n" + req.head, {"Content-Type": "text/plain"})
        else:
            servers.send_sse(conn, EVENTS, headers={"Content-Type": "text/event-stream"})
        return True

    srv = start_server(servers.ScriptedServer, lambda c: servers.serve_keepalive(c, respond), name="echo",
                       path="/v1/stream")
    srv.counts = counts
    return srv


def encodings(secret: str) -> set[str]:
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            base64.b64encode(secret.encode()).decode()}


def leaks(secrets: dict[str, str], texts: dict[str, str]) -> list[str]:
    found = []
    for where, text in texts.items():
        for what, secret in secrets.items():
            for form in encodings(secret):
                if form in text:
                    found.append(f"{what} in {where}")
    return found


def run_files(folder: Path) -> dict[str, str]:
    """Every file's bytes as text; a Parquet file's every cell as well (its pages may be compressed)."""
    texts = {}
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        texts[str(path.relative_to(folder))] = path.read_bytes().decode("latin-1")
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            texts[f"{path.name} cells"] = frame.astype(str).to_csv()
    return texts


def check_counts(run_dir: Path, srv) -> None:
    """The numbers are the server's: a row per request it answered, its failures failed, its streams
    whole (a stream the run's stop cut is `cancelled`)."""
    streams = pd.read_parquet(run_dir / "streams.parquet")
    outcomes = streams["outcome"].value_counts().to_dict()
    ok, failed, cancelled = outcomes.get("ok", 0), outcomes.get("http_error", 0), outcomes.get("cancelled", 0)
    assert len(streams) == srv.counts["ok"] + srv.counts["failed"] == ok + failed + cancelled, (outcomes, srv.counts)
    assert srv.counts["failed"] - cancelled <= failed <= srv.counts["failed"]
    assert srv.counts["ok"] - cancelled <= ok <= srv.counts["ok"] and ok >= 2
    assert streams.loc[streams["outcome"] == "ok", "events"].sum() == EVENTS * ok
    assert streams.loc[streams["outcome"] == "http_error", "error"].str.contains("upstream rejected").all()


def started(factory, *args, **kw):
    """A server of tests/servers.py started for a module's fixture (which stops it)."""
    return factory(*args, **kw)


@pytest.fixture(scope="module")
def secret_runs(tmp_path_factory):
    """`sseload run` (sseload_run_given_secrets) and `locust -f` with its web UI (locust_web_ui_given_secrets),
    side by side, each against an echoing server of its own (what is checked is what was written, shown and
    counted, not when): name -> (what the run gave, its server)."""
    plan = {"locust_web_ui": locust_web_ui_given_secrets, "sseload_run": sseload_run_given_secrets}
    srvs = {name: echoing_server(started) for name in plan}
    folders = {name: tmp_path_factory.mktemp(name) for name in plan}  # here: mktemp is not for threads
    with serving(srvs):
        yield side_by_side(plan, lambda name, run: (run(folders[name], srvs[name]), srvs[name]))


def sseload_run_given_secrets(tmp_path, srv) -> tuple:
    """(the run, the secrets it was given)."""
    secrets = {"url password": "UrlPa55-7f3c91", "query key": "QueryKey-4b2e88", "header token": "HdrToken-c0ffee11",
               "declared header": "Custom-9a8b7c6d", "app code": "AppCode-5566aa", "cookie": "CookieSess-31337",
               "body": "BodyPrompt-424242"}
    env = {"SSELOAD_E2E_QKEY": secrets["query key"], "SSELOAD_E2E_TOKEN": secrets["header token"] + "\n",
           "SSELOAD_APP_CODE": secrets["app code"]}
    scenario = {
        "request": {"url": f"http://alice:{secrets['url password']}@127.0.0.1:{srv.port}/v1/stream"
                           "?api_key=${SSELOAD_E2E_QKEY}&model=m1",
                    "method": "POST",
                    "headers": {"Content-Type": "application/json", "X-Auth-Token": "${SSELOAD_E2E_TOKEN}",
                                "X-Tenant": secrets["declared header"]},
                    "secret_headers": ["X-Tenant"]},
        "auth": {"method": "app_code"},
        "body": {"text": json.dumps({"prompt": secrets["body"]})},
        "stream": {"completion": "auto"},
    }
    return sseload_reported_run(tmp_path, "-u", "4", "-t", "3s", "--header", f"Cookie: session={secrets['cookie']}",
                                scenario=scenario, env=env), secrets


def test_sseload_run_writes_no_credential_given_any_way(secret_runs):
    (run, secrets), srv = secret_runs["sseload_run"]
    assert run.code == 0, run.stderr  # half the streams failed, but no threshold says how many may
    check_counts(run.run_dir, srv)
    # what was sent carried every credential
    sent = srv.received[0]
    assert sent.header("authorization") == "Basic " + base64.b64encode(
        f"alice:{secrets['url password']}".encode()).decode()
    assert f"api_key={secrets['query key']}" in sent.target
    assert sent.header("x-auth-token") == secrets["header token"]  # the secret file's newline trimmed
    assert sent.header("x-apig-appcode") == secrets["app code"]
    assert sent.header("cookie") == f"session={secrets['cookie']}"
    texts = run_files(run.run_dir) | {"stdout": run.stdout, "stderr": run.stderr}
    assert "report.html" in texts and "summary.md" in texts and "locust.json" in texts
    assert not leaks(secrets, texts)
    info = run.info
    assert info["scenario"]["request"]["headers"]["X-Tenant"] == "<redacted>"
    assert "127.0.0.1" in info["target_url"] and "model=m1" in info["target_url"]


def locust_web_ui_given_secrets(tmp_path, srv) -> tuple:
    """Plain Locust with its web UI, run to its end, then each page read: (the pages, the secrets it was
    given, its folder)."""
    secrets = {"bearer": "sk-Bearer-0a1b2c3d4e", "app code": "AppCodeB-778899", "query key": "QK-B-13579",
               "body": "BodyB-246810"}
    port = free_port()
    out_dir = tmp_path / "locust-out"
    out_dir.mkdir()
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
           "-H", f"{srv.base_url}/v1/stream?key={secrets['query key']}",
           "--header", f"Authorization: Bearer {secrets['bearer']}",
           "--header", f"X-Apig-AppCode: {secrets['app code']}",
           "--body", json.dumps({"prompt": secrets["body"]}),
           "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "3", "-r", "3", "-t", "3s",
           "--results-dir", str(tmp_path / "res"), "--run-id", "ui", "--csv", str(out_dir / "locust"),
           "--loglevel", "DEBUG"]
    pages = {}
    with open(tmp_path / "locust.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base)
        wait_until_stopped(base)
        for path in ("/", "/stats/requests", "/stats/failures", "/stats/report", "/sseload/live.json",
                     "/sseload/report", "/logs", "/stats/requests/csv", "/stats/failures/csv"):
            try:
                with urllib.request.urlopen(base + path, timeout=60) as response:
                    pages[path] = response.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as err:
                pages[path] = err.read().decode("utf-8", "replace")
    finally:
        proc.terminate()
        proc.wait(60)
    return pages, secrets, tmp_path


def test_locust_with_its_web_ui_shows_and_writes_no_credential(secret_runs):
    (pages, secrets, tmp_path), srv = secret_runs["locust_web_ui"]
    out_dir = tmp_path / "locust-out"
    assert "sseload report" in pages["/sseload/report"]
    sent = srv.received[0]
    assert sent.header("authorization") == f"Bearer {secrets['bearer']}"
    assert f"key={secrets['query key']}" in sent.target
    check_counts(tmp_path / "res" / "ui", srv)
    texts = (run_files(tmp_path / "res") | run_files(out_dir) | {f"page {p}": t for p, t in pages.items()}
             | {"console": (tmp_path / "locust.log").read_text()})
    assert "locust_stats.csv" in texts and "locust_failures.csv" in texts
    assert not leaks(secrets, texts)
