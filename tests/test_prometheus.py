"""Live metrics for dashboards: the exposition's histograms and counters are the live numbers, and a
real Prometheus server (Debian's) scraping a running load gets the run's values through its API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sseload.record.metrics import TTFE
from sseload.views import prometheus
from sseload.views.live import LiveStats
from tests import servers
from tests.conftest import LOCUSTFILE, free_port


class Ctx:
    """What the exposition reads of a run context."""

    def __init__(self) -> None:
        self.live, self.run_id = LiveStats(), "r1"

    def all_active(self) -> int:
        return 3


def families(ctx) -> dict:
    return {f.name: f for f in text_string_to_metric_families(prometheus.exposition(ctx).decode())}


@pytest.mark.unit
def test_the_exposition_holds_the_live_histograms_and_counters():
    ctx = Ctx()
    rng = np.random.default_rng(5)
    ttfe = rng.uniform(20, 400, 500)
    for i, v in enumerate(ttfe):
        ctx.live.add_stream("ok" if i % 10 else "reset", float(v), (np.arange(11) * 30e6).astype(np.int64))
    ctx.live.add_tokens(150.0, 12, 8.0)
    got = families(ctx)
    buckets = {s.labels["le"]: s.value for s in got["sseload_ttfe_seconds"].samples if s.name.endswith("_bucket")}
    for bound in ("0.025", "0.1", "0.25", "0.5"):
        exact = (ttfe <= float(bound) * 1e3).sum()
        assert abs(buckets[bound] - exact) <= 0.012 * exact + 2, (bound, buckets[bound], exact)
    assert buckets["+Inf"] == 500 and buckets["60"] == 500
    (total,) = [s.value for s in got["sseload_ttfe_seconds"].samples if s.name.endswith("_sum")]
    assert total == pytest.approx(ttfe.sum() / 1e3)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in got.values() for s in f.samples}
    assert samples[("sseload_events_total", (("run_id", "r1"),))] == 500 * 11
    assert samples[("sseload_streams_total", (("outcome", "reset"), ("run_id", "r1")))] == 50
    assert samples[("sseload_streams_total", (("outcome", "ok"), ("run_id", "r1")))] == 450
    assert samples[("sseload_active_streams", (("run_id", "r1"),))] == 3
    assert samples[("sseload_output_tokens_total", (("run_id", "r1"),))] == 12
    assert got["sseload_ttfe_seconds"].documentation.startswith(TTFE.label)


@pytest.mark.unit
@pytest.mark.parametrize("text", ["nine", "0", "70000", "host:"])
def test_a_bad_address_is_refused_with_the_forms_that_work(text):
    with pytest.raises(ValueError, match="HOST:PORT"):
        prometheus.parse_address(text)


@pytest.mark.unit
def test_an_address_is_a_port_on_loopback_or_a_host_and_port():
    assert prometheus.parse_address("9646") == ("127.0.0.1", 9646)
    assert prometheus.parse_address("0.0.0.0:9646") == ("0.0.0.0", 9646)


def query(base: str, promql: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        doc = json.load(response)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def test_a_real_prometheus_scrapes_a_running_load(tmp_path, start_server):
    server = shutil.which("prometheus")
    if server is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus); .ci/run installs it")
    # a third-party SSE library's streams: 20 s each, 20 events/s, the first after 200 ms
    url = start_server(servers.sse_starlette_server, events=400, gap_s=0.05, first_delay_s=0.2).url
    metrics_port, prom_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: sseload, static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]}}]\n")
    with open(tmp_path / "locust.log", "w") as log:
        load = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
             "-u", "4",
             "-r", "4", "-t", "20s", "--stop-timeout", "0", "-H", url, "--results-dir", str(tmp_path / "res"),
             "--run-id", "prom", "--sseload-prometheus", f"127.0.0.1:{metrics_port}"],
            stdout=log, stderr=subprocess.STDOUT)
    with open(tmp_path / "prometheus.log", "w") as log:
        prom = subprocess.Popen(
            [server, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        deadline, active = time.monotonic() + 30, []
        while time.monotonic() < deadline:  # scraped, and the run's 4 streams are open
            time.sleep(1)
            try:
                active = query(base, 'sseload_active_streams{run_id="prom"}')
            except OSError:
                continue
            if active and float(active[0]["value"][1]) == 4:
                break
        assert active and float(active[0]["value"][1]) == 4, (tmp_path / "locust.log").read_text()[-2000:]
        time.sleep(3)  # a few more scrapes
        (mean,) = query(base, "sseload_ttfe_seconds_sum / sseload_ttfe_seconds_count")
        assert 0.19 <= float(mean["value"][1]) <= 0.3, mean  # the server's first event comes after 200 ms
        (rate,) = query(base, "rate(sseload_events_total[4s])")
        assert 50 <= float(rate["value"][1]) <= 110, rate  # 4 open streams of 20 events/s, counted as they arrive
        (p50,) = query(base, "histogram_quantile(0.5, rate(sseload_gap_seconds_bucket[4s]))")
        assert 0.025 <= float(p50["value"][1]) <= 0.1, p50  # the 50 ms gaps' bucket
    finally:
        prom.terminate()
        load.terminate()
        prom.wait(10)
        load.wait(30)
