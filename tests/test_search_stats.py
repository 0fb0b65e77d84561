"""`sseload search`'s rules, fed numbers: how sure a point is, the samples a percentile needs, where
the search goes next, what the points say the capacity is, its exit code, its table and its flags."""

from __future__ import annotations

import json
import subprocess

import pytest

from sseload import cli
from sseload.run import verdict
from sseload.run.planfile import PlanFile, override_load
from sseload.scenario.load import default_scenario, from_dict
from sseload.scenario.model import ScenarioError
from sseload.views import capacity, search_report
from tests.conftest import ROOT, write_scenario

pytestmark = pytest.mark.unit


# --- a point: the share meeting the SLO, and how sure ---

def test_the_wilson_interval_matches_its_textbook_values():
    assert capacity.wilson(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert capacity.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert capacity.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert capacity.wilson(0, 0) == (0.0, 1.0)  # nothing seen: anything is possible


def test_73_streams_all_meeting_are_the_fewest_that_show_a_share_of_95_percent():
    assert capacity.streams_to_be_sure(0.95) == 73
    assert capacity.wilson(73, 73)[0] >= 0.95 > capacity.wilson(72, 72)[0]
    assert capacity.streams_to_be_sure(1.0) is None


@pytest.mark.parametrize("stat,needed", [("p99", 1000), ("p95", 200), ("p50", 20), ("p99.9", 10000), ("max", 1),
                                         (None, 1)])
def test_a_percentile_needs_ten_samples_beyond_it(stat, needed):
    assert capacity.samples_for(stat) == needed


def test_a_point_where_every_one_of_many_streams_met_the_slo_holds_surely():
    judged = capacity.judge_point(200, 200, 0.95, [], [])
    assert judged["holds"] and judged["sure"] and judged["reasons"] == []


def test_a_point_of_few_streams_all_meeting_the_slo_holds_but_not_surely():
    judged = capacity.judge_point(20, 20, 0.95, [], [])
    assert judged["holds"] and not judged["sure"] and judged["share_interval"][0] < 0.95


def test_a_point_under_the_share_fails_and_says_by_how_much():
    judged = capacity.judge_point(100, 80, 0.95, [], [])
    assert not judged["holds"] and judged["sure"]
    assert judged["reasons"] == ["80.0% of streams met the SLO, under 95%"]


def test_a_point_whose_run_failed_its_verdict_fails_whatever_its_share():
    judged = capacity.judge_point(100, 100, 0.95, ["threshold ttft_p50_ms: 90 is not <= 50"], [])
    assert not judged["holds"] and judged["sure"] and judged["reasons"] == ["threshold ttft_p50_ms: 90 is not <= 50"]


def test_too_few_samples_for_a_p99_is_said_not_guessed():
    thin = capacity.too_few({"ttft_p99_ms": ("ttft_ms", 340)}, {"ttft_p99_ms": 1000})
    assert thin == ["too few samples for ttft_p99_ms (340 TTFT samples; a p99 needs about 1,000)"]
    judged = capacity.judge_point(340, 340, 0.95, [], thin)
    assert not judged["holds"] and not judged["sure"] and judged["reasons"] == thin


# --- the search: bracket, then narrow ---

def searched(capacity_load: float, low: float, high: float, whole: bool, resolution: float = 0.05) -> tuple:
    """The search's decisions against a service holding up to ``capacity_load``: (loads tried, why it stopped)."""
    points = []
    while True:
        load, why = capacity.next_load(points, low, high, whole, resolution)
        if load is None:
            return [p["load"] for p in points], why, points
        points.append({"load": load, "holds": load <= capacity_load, "sure": True})


def test_the_closed_model_doubles_until_a_point_fails_then_bisects_to_one_user():
    tried, why, points = searched(5, 1, 64, whole=True)
    assert tried == [1, 2, 4, 8, 6, 5] and why == "resolution"
    assert capacity.answer(points, whole=True) == (5, [5, 5])


def test_a_search_whose_most_load_held_says_the_capacity_is_at_least_that():
    tried, why, points = searched(100, 3, 20, whole=True)
    assert tried == [3, 6, 12, 20] and why == "max"
    assert capacity.answer(points, whole=True) == (20, [20, None])


def test_a_search_whose_least_load_failed_has_no_capacity():
    tried, why, points = searched(0.5, 1, 64, whole=True)
    assert tried == [1] and why == "min"
    assert capacity.answer(points, whole=True) == (None, [None, 0])
    assert verdict.search_code(None, 0) == verdict.FAILED


def test_the_open_model_narrows_the_rate_to_its_relative_resolution():
    tried, why, points = searched(26.3, 4, 64, whole=False, resolution=0.1)
    found, (low, high) = capacity.answer(points, whole=False)
    assert why == "resolution" and low <= 26.3 < high and (high - low) <= 0.1 * low
    assert tried[:4] == [4, 8, 16, 32]


def test_the_interval_ends_at_the_points_that_were_sure():
    points = [{"load": 4, "holds": True, "sure": True}, {"load": 8, "holds": True, "sure": False},
              {"load": 16, "holds": False, "sure": False}, {"load": 12, "holds": False, "sure": True}]
    assert capacity.answer(points, whole=True) == (8, [4, 11])


# --- the exit code, the table, the flags ---

def test_the_exit_code_follows_require():
    assert verdict.search_code(8, 8) == verdict.PASSED
    assert verdict.search_code(7, 8) == verdict.FAILED
    assert verdict.search_code(3, 0) == verdict.PASSED


def test_the_search_help_lists_the_verdict_modules_search_codes():
    assert [code for code, _ in verdict.SEARCH_EXIT_CODES] == ["0", "1", "2", "3", "128+N"]
    epilog = cli._exit_codes_epilog(verdict.SEARCH_EXIT_CODES)
    assert all(meaning in epilog for _, meaning in verdict.SEARCH_EXIT_CODES)
    assert cli.build_parser()._subparsers._group_actions[0].choices["search"].epilog == epilog


def test_the_search_page_lists_exactly_the_search_exit_codes():
    page = (ROOT / "docs" / "search.md").read_text()
    table = page[page.index("## Exit codes"):]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == [code for code, _ in verdict.SEARCH_EXIT_CODES]


def test_the_search_table_reads_with_its_names_and_defaults():
    table = default_scenario().search
    assert (table.over, table.min, table.max, table.share, table.point_s, table.budget_s, table.require) == \
        ("users", 1, 64, 0.95, 30, 600, 0)
    read = from_dict({"search": {"over": "rate", "min": 0.5, "max": 40, "share": 0.99, "require": 8}}).search
    assert (read.over, read.min, read.max, read.share, read.require) == ("rate", 0.5, 40, 0.99, 8)


@pytest.mark.parametrize("table,said", [
    ({"share": 1.5}, "[search] share = 1.5 must be more than 0 and at most 1"),
    ({"min": 0}, "[search] min = 0"),
    ({"min": 8, "max": 4}, "min = 8 is more than max = 4"),
    ({"min": 1.5}, "takes whole numbers of users"),
    ({"point_s": 30, "budget_s": 10}, "budget_s = 10 is shorter than one point"),
    ({"over": "streams"}, "use 'users' (closed model) or 'rate' (streams/s, open model)"),
])
def test_a_search_table_out_of_range_is_refused_naming_the_key(table, said):
    with pytest.raises(ScenarioError) as err:
        from_dict({"search": table})
    assert said in str(err.value)


@pytest.fixture
def no_process(monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", tripwire)


@pytest.mark.parametrize("argv,said", [
    (["-t", "30s"], "-t/--run-time does not apply to a search"),
    (["-u", "8"], "-u/--users does not apply to a search over users"),
])
def test_run_flags_that_do_not_apply_to_a_search_are_refused_before_anything_starts(capsys, tmp_path, no_process,
                                                                                    argv, said):
    code = cli.main(["search", *argv, "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == verdict.BAD_INPUT and said in err and err.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_a_shaped_load_cannot_be_searched(capsys, tmp_path, no_process):
    path = write_scenario(tmp_path / "s.toml", {"load": {"shape": "ramp"}})
    assert cli.main(["search", str(path), "--results-dir", str(tmp_path / "results")]) == verdict.BAD_INPUT
    assert "a search sets each point's load itself" in capsys.readouterr().err


def test_a_points_load_travels_in_the_run_plan_file_and_overrides_the_scenarios(tmp_path):
    plan = PlanFile(results_dir="r", run_id="p", embedded_target=False, run_s=3.0, progress=False,
                    orphan_grace_s=30.0, load={"arrival": "constant", "rate_per_s": 12.5})
    assert PlanFile.read(plan.write(tmp_path)) == plan
    scenario = default_scenario()
    plan.apply(scenario)
    assert (scenario.load.arrival, scenario.load.rate_per_s) == ("constant", 12.5)
    override_load(scenario, {"arrival": "closed"})
    assert scenario.load.arrival == "closed"


# --- the answer, on the console and in search.html ---

def result_of(points: list[dict], capacity_load, interval, require=0.0) -> dict:
    return {"search_id": "s", "scenario": "x", "over": "users", "unit": "users",
            "search": {"share": 0.95, "min": 1}, "slo": {"ttft_ms": 20.0}, "thresholds": {},
            "capacity": capacity_load, "interval": interval, "stopped": "resolution",
            "stopped_text": capacity.STOPPED["resolution"], "require": require,
            "passed": verdict.search_code(capacity_load, require) == 0, "points": points}


def point(load, holds, share, p99):
    return {"load": load, "run_id": f"0{load}-users-{load}", "length_s": 3, "streams": 100, "share_met": share,
            "share_interval": list(capacity.wilson(round(share * 100), 100)), "holds": holds, "sure": True,
            "reasons": [] if holds else ["under"], "streams_per_s": 10.0 * min(load, 4), "goodput": 10.0 * share,
            "error_rate": 0.0, "ttft_ms": {"p50": 1.0, "p90": 1.0, "p95": p99, "p99": p99, "max": p99, "count": 100}}


def test_the_answer_says_the_capacity_its_interval_why_it_stopped_and_the_gate():
    result = result_of([], 4, [4, 4], require=8)
    assert search_report.answer_line(result) == (
        f"capacity: 4 users (at least 4 users, at most 4 users); stopped: {capacity.STOPPED['resolution']}; "
        "require 8 users: NOT met")
    assert search_report.answer_line(result_of([], None, [None, 1])).startswith("capacity: below 1 users")


def test_search_html_draws_the_curve_with_the_capacity_marked_and_a_row_per_point(tmp_path):
    points = [point(1, True, 1.0, 2.0), point(2, True, 1.0, 2.5), point(4, True, 1.0, 3.0), point(8, False, 0.1, 150)]
    result = result_of(points, 4, [4, 7])
    (tmp_path / "search.json").write_text(json.dumps(result))
    page = search_report.write(tmp_path, result).read_text()
    assert page.count("<img") == 2 and "capacity: 4 users" in page
    assert page.count("<tr>") == len(points) + 1 and "08-users-8" in page
    assert (tmp_path / "search-load.png").stat().st_size > 0 and (tmp_path / "search-curve.png").exists()
