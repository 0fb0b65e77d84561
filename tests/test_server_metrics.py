"""The service's own metrics ([server_metrics]): a Prometheus page is read line by line, scraped on a
schedule during the run by the process that writes the run, stored as server_metrics.parquet, charted
beside the run's latency; an endpoint that fails is said once and never fails the run."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from sseload.record.server_metrics import ExpositionError, ServerSamples, parse
from sseload.run.scraper import Scraper
from sseload.scenario.load import from_dict
from sseload.scenario.model import ScenarioError
from sseload.views.server_charts import series_of
from tests import servers
from tests.conftest import free_port, side_by_side, sseload_reported_run, sseload_run

PAGE = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{engine="0",le="0.3",model_name="m"} 2.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} 0.25
vllm:request_queue_time_seconds_count{engine="0",model_name="m"} 2.0
odd{path="/a}b",q="x y"} +Inf 1700000000000
tabbed\t5
# EOF
"""


@pytest.mark.unit
def test_a_page_is_read_into_samples_with_their_family_type():
    got = {(s.name, s.labels): (s.type, s.value) for s in parse(PAGE)}
    assert got[("vllm:num_requests_running", 'engine="0",model_name="m"')] == ("gauge", 3.0)
    assert got[("vllm:request_queue_time_seconds_sum", 'engine="0",model_name="m"')] == ("histogram", 0.25)
    assert got[("odd", 'path="/a}b",q="x y"')] == ("untyped", float("inf"))  # its own timestamp ignored
    assert got[("tabbed", "")] == ("untyped", 5.0)
    assert len(got) == 6


@pytest.mark.unit
@pytest.mark.parametrize("line", ["no_value", 'half{a="1" 3', "name{} three"])
def test_a_line_that_is_not_a_sample_is_refused_naming_it(line):
    with pytest.raises(ExpositionError, match="line 2"):
        parse(f"ok 1\n{line}\n")


@pytest.mark.unit
def test_samples_are_stored_once_per_series_and_come_back_as_the_documented_table():
    store = ServerSamples()
    store.add(10, parse("a 1\nb{x=\"1\"} 2\n"))
    store.add(20, parse("a 3\nc 4\n"))
    frame = store.table().to_pandas()
    assert frame.columns.tolist() == ["time_ns", "name", "labels", "type", "value"]
    assert frame.values.tolist() == [[10, "a", "", "untyped", 1.0], [10, "b", 'x="1"', "untyped", 2.0],
                                     [20, "a", "", "untyped", 3.0], [20, "c", "", "untyped", 4.0]]
    assert store.series == 3 and len(store) == 4


@pytest.mark.unit
def test_a_failing_endpoint_is_said_once_and_counted(caplog):
    answers = iter(["up 1\n", "up 1\n"])

    def fetch(url, timeout_s):
        try:
            return next(answers)
        except StopIteration:
            raise ConnectionRefusedError(111, "Connection refused") from None

    scraper = Scraper("http://127.0.0.1:9/metrics", 1.0, fetch=fetch)
    with caplog.at_level(logging.WARNING, logger="sseload"):
        kept = [scraper.scrape() for _ in range(5)]
    assert kept == [True, True, False, False, False]
    assert len([r for r in caplog.records if "server metrics" in r.getMessage()]) == 1
    info = scraper.info()
    assert info["scrapes"] == 2 and info["failed_scrapes"] == 3
    assert info["error"].startswith("stopped answering after 2 scrapes: connection refused")


@pytest.mark.unit
def test_gauges_are_drawn_as_scraped_counters_as_rates_histograms_as_means_per_interval():
    rows = []
    for k in range(4):
        rows += [(k, "g", "", "gauge", float(k % 2)), (k, "c_total", "", "counter", 3.0 * k),
                 (k, "h_sum", "", "histogram", 0.2 * k), (k, "h_count", "", "histogram", 2.0 * k)]
    frame = pd.DataFrame(rows, columns=["t_s", "name", "labels", "type", "value"])
    assert series_of(frame, "g")[""][1].tolist() == [0, 1, 0, 1]
    assert series_of(frame, "c_total")[""][1].tolist() == [3, 3, 3]
    assert np.allclose(series_of(frame, "h")[""][1], 0.1)
    assert series_of(frame, "absent") == {}


@pytest.mark.unit
@pytest.mark.parametrize("table, says", [({"url": "127.0.0.1:8000/metrics"}, "must start with http"),
                                         ({"url": "http://h/metrics", "interval_ms": 50}, "at least 100")])
def test_a_bad_server_metrics_table_is_refused_before_any_load(table, says):
    with pytest.raises(ScenarioError, match=says):
        from_dict({"server_metrics": table}, "s.toml")


def test_the_stored_series_are_the_pages_the_endpoint_served_at_their_times(tmp_path, start_server):
    page = start_server(servers.prometheus_page, step_s=0.4)
    run = sseload_reported_run(tmp_path, "-u", "2", "-t", "3s", scenario={
        "server_metrics": {"url": page.url, "interval_ms": 200, "series": ["app_requests_total"]}})
    assert run.code == 0, run.stderr[-3000:]
    stored = pd.read_parquet(run.run_dir / "server_metrics.parquet")
    running = stored[(stored["name"] == "vllm:num_requests_running") & (stored["labels"] == 'model_name="m"')]
    rendered = pd.DataFrame(page.rendered, columns=["t_ns", "k"])
    assert len(running) == len(rendered) >= 10  # every scrape kept, about five a second
    for t_ns, value in zip(running["time_ns"], running["value"], strict=True):
        nearest = rendered.iloc[(rendered["t_ns"] - t_ns).abs().argmin()]
        assert 0 <= nearest["t_ns"] - t_ns < 100e6  # stamped when sent, on the wall clock
        assert value == nearest["k"] % 7
    assert set(stored["type"]) == {"gauge", "counter", "histogram"}
    info = run.info["server_metrics"]
    assert info["scrapes"] == len(rendered) and info["failed_scrapes"] == 0 and info["error"] is None
    html = (run.run_dir / "report.html").read_text()
    for drawn in ("Requests running and waiting (server)", "vllm:num_requests_waiting", "KV-cache usage (server)",
                  "Queue time (server", "app_requests_total (server)"):  # the last one the scenario named
        assert drawn in html, drawn
    assert (run.run_dir / "charts" / "server_metrics.png").exists()


@pytest.fixture(scope="module")
def gone_runs(tmp_path_factory):
    """A run scraping an endpoint where nothing listens ("dead") and one scraping an endpoint that stops
    answering after 4 pages ("disappears"), side by side (what is checked is what was scraped and said,
    not when): gone -> RunResult."""
    page = servers.prometheus_page(pages=4)
    urls = {"dead": f"http://127.0.0.1:{free_port()}/metrics", "disappears": page.url}
    folders = {gone: tmp_path_factory.mktemp(gone) for gone in urls}  # here: mktemp is not for threads
    try:
        yield side_by_side(urls, lambda gone, url: sseload_run(folders[gone], "-u", "2", "-t", "3s", scenario={
            "server_metrics": {"url": url, "interval_ms": 200}}))
    finally:
        page.stop()
    assert not page.errors, page.errors  # a handler's unexpected exception fails the module (as start_server's)


@pytest.mark.parametrize("gone", ["dead", "disappears"])
def test_an_endpoint_that_fails_is_said_once_and_the_run_still_passes(gone_runs, gone):
    run = gone_runs[gone]
    assert run.code == 0, run.stderr[-3000:]
    said = (run.stdout + run.stderr).count("server metrics at")
    assert said == 1, run.stdout + run.stderr
    info = run.info["server_metrics"]
    assert info["failed_scrapes"] >= 5
    if gone == "dead":
        assert info["scrapes"] == 0 and "refused" in info["error"]
        assert not (run.run_dir / "server_metrics.parquet").exists()
    else:
        assert info["scrapes"] == 4 and info["error"].startswith("stopped answering after 4 scrapes")
        assert (run.run_dir / "server_metrics.parquet").exists()
