"""Reports, thresholds and comparisons from real runs, checked against the raw Parquet."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from tests.conftest import sseload_reported_run, sseload_run


def base(ttfe_ms: float = 50, **extra) -> dict:
    out = {
        "stream": {"completion": "event:done"},
        "load": {"users": 4, "spawn_rate": 4, "run_time": "2s"},
        "target": {"ttfe_ms": ttfe_ms, "gap_ms": "uniform:2:12", "events": 10, "faults": {"reset": 0.2}},
    }
    out.update(extra)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    result = sseload_reported_run(tmp, scenario=base())
    assert result.code == 0, result.stderr[-2000:]
    return result


def test_report_files_and_charts_exist(run):
    for name in ("report.html", "summary.md", "summary.json"):
        assert (run.run_dir / name).stat().st_size > 100
    charts = {p.name for p in (run.run_dir / "charts").glob("*.png")}
    assert {"ttfe.png", "ttfe_over_time.png", "gaps.png", "durations.png", "outcomes_over_time.png",
            "throughput.png"} <= charts


def test_summary_json_equals_an_independent_recomputation(run):
    summary = json.loads((run.run_dir / "summary.json").read_text())
    streams = pd.read_parquet(run.run_dir / "streams.parquet")
    events = pd.read_parquet(run.run_dir / "events.parquet")
    assert summary["streams"] == len(streams)
    assert summary["outcomes"] == streams["outcome"].value_counts().to_dict()
    assert summary["outcomes"].get("reset", 0) > 0  # the injected faults are there
    ttfe = np.sort(streams["ttfe_ms"].dropna().to_numpy())
    for p in (50, 90, 95, 99):
        assert summary["ttfe_ms"][f"p{p}"] == pytest.approx(np.percentile(ttfe, p))
    assert summary["ttfe_ms"]["max"] == pytest.approx(ttfe.max())
    gaps = events["gap_ms"].dropna().to_numpy()
    for p in (50, 99):
        assert summary["gap_ms"][f"p{p}"] == pytest.approx(np.percentile(gaps, p))
    errors = streams["outcome"].isin(["reset", "timeout", "incomplete", "http_error", "protocol_error"]).sum()
    assert summary["error_rate"] == pytest.approx(errors / len(streams))
    assert summary["cutoff_rate"] == pytest.approx((streams["outcome"] == "cutoff").mean())
    start = streams["start_ns"].min()
    end = (streams["start_ns"] + streams["duration_ms"] * 1e6).max()
    seconds = (end - start) / 1e9
    assert summary["events_per_s"] == pytest.approx(streams["events"].sum() / seconds)
    window_s = min(float(run.info["run_time"]), seconds)  # the load window: the run time, not the drain
    assert summary["streams_per_s"] == pytest.approx(len(streams) / window_s)


def test_regenerating_the_report_from_files_gives_the_same_summary(run):
    before = json.loads((run.run_dir / "summary.json").read_text())
    proc = subprocess.run([sys.executable, "-m", "sseload", "report", str(run.run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    after = json.loads((run.run_dir / "summary.json").read_text())
    assert after == before


def test_summary_markdown_is_short_and_has_the_headline_numbers(run):
    md = (run.run_dir / "summary.md").read_text()
    assert len(md.splitlines()) < 40
    assert "| TTFE (ms) |" in md and "| reset |" in md


def test_failing_threshold_fails_the_run_and_check_and_writes_junit(tmp_path):
    result = sseload_reported_run(tmp_path, scenario=base(thresholds={"ttfe_p95_ms": 10.0, "min_streams": 1}))
    assert result.code == 1
    assert "FAIL" in result.stdout
    suite = ET.parse(result.run_dir / "thresholds.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["ttfe_p95_ms"]
    # the report, summary.md and summary.json lead with the verdict
    page = (result.run_dir / "report.html").read_text()
    banner = page[page.index("<div id='verdict'"):page.index("</div>", page.index("<div id='verdict'"))]
    assert page.index("id='verdict'") < page.index("<h2>Summary</h2>")
    assert "class='fail'" in banner and "FAIL" in banner and "threshold ttfe_p95_ms" in banner
    assert "(1 of 2 thresholds passed)" in banner
    assert (result.run_dir / "summary.md").read_text().splitlines()[2] == "**FAIL**"
    verdict = json.loads((result.run_dir / "summary.json").read_text())["verdict"]
    assert not verdict["passed"] and [t["name"] for t in verdict["thresholds"] if not t["passed"]] == ["ttfe_p95_ms"]
    check = subprocess.run([sys.executable, "-m", "sseload", "check", str(result.run_dir)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and "FAIL" in check.stdout


def test_passing_thresholds_pass_check_and_lead_the_report(run, tmp_path):
    """The module's run judged again with thresholds it meets: check exits 0, the report's banner passes."""
    import shutil

    from sseload.run import verdict
    from sseload.views import report, results

    scenario = tmp_path / "passing.toml"
    scenario.write_text("[thresholds]\nttfe_p95_ms = 500.0\ncutoff_rate_max = 0.0\n")
    check = subprocess.run([sys.executable, "-m", "sseload", "check", str(run.run_dir), "--scenario", str(scenario),
                            "--junit", str(tmp_path / "t.xml")], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert ET.parse(tmp_path / "t.xml").getroot().get("failures") == "0"
    copy = tmp_path / "copy"
    shutil.copytree(run.run_dir, copy)
    again = results.load(copy)
    summary = results.summarise(again)
    report.write_all(again, summary, verdict.judge(summary, again.info, {"ttfe_p95_ms": 500.0,
                                                                            "cutoff_rate_max": 0.0}))
    assert "<div id='verdict' class='pass'><strong>PASS</strong> (2 of 2 thresholds passed)" in \
        (copy / "report.html").read_text()


def test_compare_flags_a_ttfe_regression(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def run_with(ttfe_ms: float, run_id: str):
        (tmp_path / run_id).mkdir()
        target = {"ttfe_ms": ttfe_ms, "gap_ms": 5, "events": 5}
        return sseload_run(tmp_path / run_id, scenario=base(ttfe_ms, target=target), run_id=run_id)

    with ThreadPoolExecutor(2) as pool:  # two short runs side by side (each is mostly start-up)
        a, b = pool.map(run_with, (50, 150), ("a", "b"))
    proc = subprocess.run([sys.executable, "-m", "sseload", "compare", str(a.run_dir), str(b.run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ttfe_ms p50" in proc.stdout
    md = (b.run_dir / "compare.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| ttfe_ms p50"))
    assert "REGRESSION" in row
    same = subprocess.run([sys.executable, "-m", "sseload", "compare", str(a.run_dir), str(a.run_dir),
                           "--out", str(tmp_path / "same")], capture_output=True, text=True, timeout=120)
    assert same.returncode == 0, same.stdout


def test_check_on_a_folder_that_is_not_a_run_says_so(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sseload", "check", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a run directory" in proc.stderr and "Traceback" not in proc.stderr


def test_a_run_from_a_newer_schema_is_refused_with_advice(tmp_path, run):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(run.run_dir, copy)
    info = json.loads((copy / "run.json").read_text())
    info["schema_version"] = 99
    (copy / "run.json").write_text(json.dumps(info))
    proc = subprocess.run([sys.executable, "-m", "sseload", "report", str(copy)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "schema 99" in proc.stderr and "Traceback" not in proc.stderr


def test_report_renders_in_a_real_browser_with_the_verdict_first_and_interactive_charts(run, tmp_path):
    from tests.browser import browser_page

    with browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
                   else route.continue_())  # offline: everything it needs is in the file
        page.goto((run.run_dir / "report.html").as_uri())
        assert page.title().startswith("sseload report")
        # the verdict comes before any number
        verdict = page.locator("#verdict")
        assert verdict.inner_text().startswith("PASS")
        first_table_y = page.locator("table").first.bounding_box()["y"]
        assert verdict.bounding_box()["y"] < first_table_y
        headings = page.locator("h2").all_inner_texts()
        assert {"Summary", "Latency", "Outcomes", "Charts", "Measurement health"} <= set(headings)
        assert page.locator("table").count() >= 4 and "TTFE (ms)" in page.inner_text("body")
        # the run's 20% resets stand out: the error rate row and the outcome's row are highlighted
        assert page.locator("#verdict li", has_text="of streams ended in an error").count() == 1
        bad = page.locator("tr.bad").all_inner_texts()
        assert any(row.startswith("error rate") for row in bad) and any(row.startswith("reset") for row in bad), bad
        # charts are drawn by the embedded ECharts: canvases, each with its PNG beside it
        assert page.locator(".chart canvas").count() >= 8 and not errors, errors
        assert page.locator("a.png").count() >= 6
        assert page.evaluate("typeof echarts") == "object"
        # interactive: hovering a chart shows the values under the pointer, the wheel zooms
        chart = page.locator("#chart-ttfe_over_time-0")
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.45)
        tooltip = chart.locator("div", has_text="TTFE p50")
        tooltip.last.wait_for(state="visible", timeout=5_000)
        zoom_end = ("echarts.getInstanceByDom(document.getElementById('chart-ttfe_over_time-0'))"
                    ".getOption().dataZoom[0].end")
        before = page.evaluate(zoom_end)
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(300)
        after = page.evaluate(zoom_end)
        assert after < before, (before, after)
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)


@pytest.mark.parametrize("script,expect", [
    ("ttfe_by_concurrency.py", "50%"),
    ("gaps_by_position.py", "99%"),
    ("outcomes_by_body_size.py", "share of streams"),
    ("worst_streams.py", "max_gap_ms"),
    ("harness_error.py", "TTFE error"),
])
def test_analysis_scripts_answer_their_question_on_a_real_run(run, script, expect):
    from tests.conftest import ROOT

    proc = subprocess.run([sys.executable, str(ROOT / "analysis" / script), str(run.run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert expect in proc.stdout


def test_a_report_on_a_run_without_events_says_what_is_missing(tmp_path, run):
    import shutil

    copy = tmp_path / "no-events"
    shutil.copytree(run.run_dir, copy)
    for path in copy.glob("events*.parquet"):
        path.unlink()
    proc = subprocess.run([sys.executable, "-m", "sseload", "report", str(copy)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warning: events.parquet is missing: gaps" in proc.stderr
    assert "events.parquet is missing" in (copy / "report.html").read_text()
    assert "events.parquet is missing" in (copy / "summary.md").read_text()
    assert json.loads((copy / "summary.json").read_text())["missing"]


def test_compare_of_runs_with_different_settings_warns_first(tmp_path, run):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run.run_dir, other)
    info = json.loads((other / "run.json").read_text())
    info["users"] = (info.get("users") or 1) * 4
    (other / "run.json").write_text(json.dumps(info))
    proc = subprocess.run([sys.executable, "-m", "sseload", "compare", str(run.run_dir), str(other),
                           "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=120)
    assert proc.stderr.startswith("sseload: warning: the runs differ in their settings (users"), proc.stderr
    assert "The runs differ in their settings" in (tmp_path / "cmp" / "compare.md").read_text().splitlines()[2]


def test_the_report_of_an_llm_run_shows_ttft_first_in_a_real_browser(tmp_path, start_server):
    """Issue 30's done-when: opened in Chromium, an LLM run's report (against an independent OpenAI-style
    server: tests/llm_servers.py) leads with TTFT (its table and its charts), and TTFE, the role-only
    first chunk, comes lower down."""
    from sseload.record.metrics import TTFE, TTFT
    from tests import llm_servers
    from tests.browser import browser_page

    srv = start_server(llm_servers.llm_api_server, "openai", answer=20, reasoning=2, prefill_s=0.05, gap_s=0.01)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Say hello"}],
            "stream_options": {"include_usage": True}}
    result = sseload_reported_run(tmp_path, "-H", srv.url, "--body", json.dumps(body), "-u", "6", "-r", "3",
                                  "-t", "3s")
    assert result.code == 0, result.stderr[-2000:]
    with browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto((result.run_dir / "report.html").as_uri())
        headings = page.locator("h2").all_inner_texts()
        assert headings.index("Latency") < headings.index("Summary") < headings.index("Charts")
        first_row = page.locator("table").first.locator("tbody tr").first.inner_text()
        assert first_row.split("\t")[0] == TTFT.heading, first_row
        ttft = page.get_by_role("cell", name=TTFT.heading, exact=True).bounding_box()
        ttfe = page.get_by_role("cell", name=TTFE.heading, exact=True).bounding_box()
        assert ttft["y"] < ttfe["y"]  # on the page, TTFT is above TTFE
        drawn = page.locator("figure.charts").evaluate_all("figures => figures.map(f => f.dataset.chart)")
        assert drawn[0] == "ttft" and drawn.index("ttfe") > drawn.index("tokens_per_user_against_total"), drawn
        assert page.locator("#chart-ttft-0 canvas").count() == 1 and not errors, errors
        page.screenshot(path=str(tmp_path / "llm-report.png"))
