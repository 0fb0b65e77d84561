"""The Grafana dashboard in docs/grafana/ works on real data: a real Prometheus (Debian's) scrapes a
running LLM load's live metrics (`sseload run --prometheus`) and a service's own page, and every query of
every panel, and the run variable's, answers with data."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from tests import servers
from tests.conftest import ROOT, free_port, write_scenario

DASHBOARD = ROOT / "docs" / "grafana" / "sseload-dashboard.json"


def prometheus_api(base: str, path: str, **params) -> list:
    with urllib.request.urlopen(f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=5) as response:
        doc = json.load(response)
    assert doc["status"] == "success", doc
    return doc["data"]["result"] if isinstance(doc["data"], dict) else doc["data"]


def as_grafana_sends(expr: str) -> str:
    """A panel's query with Grafana's variables filled in: every run, a 5 s rate window (1 s scrapes)."""
    return expr.replace("$__rate_interval", "5s").replace("$run_id", ".*")


def test_the_dashboard_is_valid_grafana_json_over_sseload_and_the_service():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert dashboard["uid"] and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert any("sseload_" in e for e in exprs) and any("vllm:" in e for e in exprs)
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "run_id"}


def test_every_panel_answers_from_a_real_prometheus_scraping_a_run(tmp_path, start_server):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus); .ci/run installs it")
    target = start_server(servers.vllm_like_server, prefill_s=0.1, token_s=0.02, max_life_s=90)
    page = start_server(servers.prometheus_page, step_s=1.0, max_life_s=90)
    metrics_port, prom_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
        f"  - {{job_name: sseload, static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]}}\n"
        f"  - {{job_name: service, static_configs: [{{targets: ['127.0.0.1:{page.port}']}}]}}\n")
    scenario = write_scenario(tmp_path / "llm.toml", {"request": {"path": "/v1/chat/completions"},
                                                      "stream": {"completion": "auto"}})
    with open(tmp_path / "sseload.log", "w") as log:
        load = subprocess.Popen([sys.executable, "-m", "sseload", "run", str(scenario), "-H", target.base_url,
                                 "-u", "4", "-r", "4", "-t", "30s", "--no-report", "--results-dir",
                                 str(tmp_path / "results"), "--run-id", "dash", "--prometheus", str(metrics_port)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    with open(tmp_path / "prometheus.log", "w") as log:
        prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        deadline, ready = time.monotonic() + 40, False
        while time.monotonic() < deadline and not ready:
            time.sleep(1)
            try:
                ready = bool(prometheus_api(base, "query", query="sseload_tpot_seconds_count > 0")) and \
                    bool(prometheus_api(base, "query", query="vllm:num_requests_running"))
            except OSError:
                continue
        assert ready, (tmp_path / "sseload.log").read_text()[-2000:]
        time.sleep(6)  # a rate window of scrapes with streams ending in it
        assert prometheus_api(base, "label/run_id/values", **{"match[]": "sseload_active_streams"}) == ["dash"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]:
            for target_query in panel["targets"]:
                result = prometheus_api(base, "query", query=as_grafana_sends(target_query["expr"]))
                assert result, (panel["title"], target_query["expr"])
                assert any(math.isfinite(float(r["value"][1])) for r in result), (panel["title"], result)
    finally:
        prom.terminate()
        load.terminate()
        prom.wait(10)
        load.wait(30)
