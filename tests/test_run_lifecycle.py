"""One run lifecycle: the scenario picked and compiled once, one run-plan file from `sseload run` to
its Locust processes, run.json composed in one place, and one module that decides every exit code."""

from __future__ import annotations

import ast
import json
import signal
from argparse import Namespace
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest

from sseload import cli
from sseload.protocol.gateway import DEFAULT_LIMIT_S
from sseload.protocol.outcomes import Outcome
from sseload.run import runinfo, verdict
from sseload.run.guard import EarlyStop
from sseload.run.planfile import PlanFile, PlanFileError
from sseload.scenario.load import default_scenario, for_host, from_dict, load, select
from sseload.scenario.model import TABLES, Auth, Load, Scenario, ScenarioError, limit_s_of
from tests.conftest import ROOT, write_scenario

pytestmark = pytest.mark.unit

PACKAGE = ROOT / "sseload"


# --- the run-plan file: the supervisor's one contract with its children ---

def test_the_docs_table_of_the_run_plan_file_lists_exactly_its_fields():
    page = (ROOT / "docs" / "workers.md").read_text()
    section = page[page.index("## The run-plan file"):]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split("|")[1].strip().strip("`") for row in rows] == [f.name for f in fields(PlanFile)]


def test_a_run_plan_file_reads_back_as_written(tmp_path):
    plan = PlanFile(results_dir="results", run_id="r1", embedded_target=True, run_s=30.0, progress=True,
                    orphan_grace_s=75.0)
    path = plan.write(tmp_path)
    assert PlanFile.read(path) == plan and plan.run_dir == Path("results/r1")
    assert json.loads(path.read_text())["version"] == 1


@pytest.mark.parametrize("text", ["{}", "not json", '{"version": 2}'])
def test_a_file_that_is_not_a_run_plan_is_refused_with_a_sentence(tmp_path, text):
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(PlanFileError, match="--sseload-plan .*(cannot read the run-plan file|not a run-plan file)"):
        PlanFile.read(path)


def test_the_hidden_flags_are_gone_and_the_plan_option_is_all_the_supervisor_adds():
    sources = "".join(p.read_text() for p in (PACKAGE / "run").glob("*.py")) + (PACKAGE / "cli.py").read_text()
    for hidden in ("--sseload-embedded", "--sseload-run-s", "--sseload-managed", "--sseload-progress",
                   "--sseload-orphan-grace-s", "argparse.SUPPRESS"):
        assert hidden not in sources, hidden


# --- exit codes: one module decides them ---

def summary_of(streams: int = 10, ok: int = 10, **extra) -> dict:
    outcomes = {"ok": ok, "http_error": streams - ok} if streams - ok else {"ok": ok}
    return {"streams": streams, "outcomes": {k: v for k, v in outcomes.items() if v}, "run_id": "r",
            "error_rate": (streams - ok) / streams if streams else 0.0, **extra}


def test_a_run_whose_streams_all_succeeded_passes():
    judged = verdict.judge(summary_of(), {}, {})
    assert judged.passed and judged.exit_code == verdict.PASSED == 0


def test_a_run_where_no_stream_succeeded_fails():
    judged = verdict.judge(summary_of(ok=0), {}, {})
    assert judged.exit_code == verdict.FAILED == 1 and judged.failures == ["no stream succeeded (10 streams)"]


def test_a_failed_threshold_fails_the_run():
    judged = verdict.judge(summary_of(ok=5), {}, {"error_rate_max": 0.1})
    assert judged.exit_code == 1 and judged.failures == ["threshold error_rate_max: 0.5 is not <= 0.1"]


def test_a_lost_worker_fails_the_run_in_run_jsons_words():
    judged = verdict.judge(summary_of(), {"lost_workers": ["w1"]}, {})
    assert judged.exit_code == 1 and judged.failures == [runinfo.lost_workers_text(["w1"])]


@pytest.mark.parametrize("code", verdict.STOPPED_EARLY)
def test_a_run_that_stopped_itself_early_is_bad_input_read_from_run_json(code):
    info = {"partial_reasons": [{"code": code, "text": "stopped early: the first 3 streams all failed"}]}
    judged = verdict.judge(summary_of(ok=0), info, {})
    assert judged.exit_code == verdict.BAD_INPUT == 2 and judged.stopped_early
    assert "stopped early: the first 3 streams all failed" in judged.failures


def test_an_interrupted_run_exits_as_its_signal_whatever_else_it_did():
    info = {"interrupted_by": "SIGINT",
            "partial_reasons": [{"code": runinfo.FAILURE_STORM, "text": "stopped early"}]}
    judged = verdict.judge(summary_of(ok=0), info, {"min_streams": 1000})
    assert not judged.passed and judged.exit_code == 128 + signal.SIGINT == 130


def test_a_run_that_recorded_nothing_exits_3_before_anything_else():
    judged = verdict.judge(summary_of(streams=0, ok=0), {"interrupted_by": "SIGTERM"}, {})
    assert judged.exit_code == verdict.NOTHING_RECORDED == 3


def test_a_junit_file_that_cannot_be_written_is_said_in_a_sentence_and_exits_2(tmp_path, capsys):
    from sseload.views.thresholds import Verdict

    judged = verdict.RunVerdict([Verdict("min_streams", 1, 5, True, ">=")])
    verdict.say(judged, tmp_path / "missing" / "thresholds.xml", "r")  # `sseload check --junit` elsewhere
    assert capsys.readouterr().err == (f"sseload: {tmp_path / 'missing' / 'thresholds.xml'} could not be written "
                                       "(No such file or directory)\n")
    assert judged.passed and judged.exit_code == verdict.BAD_INPUT == 2


@pytest.mark.parametrize("left", ["run.json", "locust_stats.csv"])
def test_a_run_folder_without_streams_recorded_nothing(tmp_path, left):
    (tmp_path / left).write_text("{}")
    judged, run, summary = verdict.of_run(tmp_path)
    assert (judged.exit_code, run, summary) == (3, None, None)


def test_a_folder_that_is_no_run_is_refused_not_judged(tmp_path):
    from sseload.views.results import ResultsError

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ResultsError):
        verdict.of_run(tmp_path)


def test_the_help_lists_the_verdict_modules_codes():
    assert [code for code, _ in verdict.EXIT_CODES] == ["0", "1", "2", "3", "128+N"]
    assert [verdict.PASSED, verdict.FAILED, verdict.BAD_INPUT, verdict.NOTHING_RECORDED] == [0, 1, 2, 3]
    assert verdict.EXIT_CODES[1][1] in cli._exit_codes_epilog()


def _literal_exits(path: Path) -> list[str]:
    """Every place in ``path`` that picks an exit code as a number: returning one from a command,
    os._exit/sys.exit with one, or setting Locust's process_exit_code to one."""
    found = []
    for func in ast.walk(ast.parse(path.read_text())):
        if not isinstance(func, ast.FunctionDef):
            continue
        command = func.name.startswith("cmd_") or func.name in ("main", "run", "finish", "_end")
        for node in ast.walk(func):
            number = None
            if command and isinstance(node, ast.Return):
                number = node.value
            elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("os._exit", "sys.exit") and node.args:
                number = node.args[0]
            elif isinstance(node, ast.Assign) and any(ast.unparse(t).endswith("process_exit_code")
                                                      for t in node.targets):
                number = node.value
            if isinstance(number, ast.Constant) and isinstance(number.value, int):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_exit_code_is_written_as_a_number_outside_the_verdict_module():
    paths = [PACKAGE / "cli.py", PACKAGE / "views" / "report.py", *(PACKAGE / "run").glob("*.py")]
    found = [hit for path in paths if path.name != "verdict.py" for hit in _literal_exits(path)]
    assert found == []
    assert _literal_exits(PACKAGE / "run" / "verdict.py") == []  # (there too: named constants)


# --- run.json composed once, from the facts of the process that writes it ---

IDENTITY = runinfo.Identity(run_id="r", target_url="http://h/", auth_method="none", insecure_tls=False,
                            embedded_target=False, scenario={}, tuning={}, locust_version="x", machine={},
                            python="3")


def test_run_json_says_why_a_run_is_partial_from_what_was_counted():
    tally = runinfo.Tally(streams_started=10, streams_recorded=8, streams_on_disk=7, write_error="disk full",
                          lost_workers=["w2"], refused_reason="2 messages refused", workers=2,
                          worker_reasons=[{"code": runinfo.SIGNAL, "text": "stopped by a signal"}])
    partial = runinfo.PartialReasons()
    partial.add(runinfo.FAILURE_STORM, "stopped early")
    info = runinfo.compose(IDENTITY, {"users": 4}, None, None, tally, partial)
    assert [r["code"] for r in info["partial_reasons"]] == [
        runinfo.FAILURE_STORM, runinfo.LOST_WORKERS, runinfo.REFUSED_MESSAGES, runinfo.SIGNAL, runinfo.WRITE_ERROR,
        runinfo.NOT_RECORDED, runinfo.NOT_WRITTEN]
    assert info["partial"] and info["users"] == 4 and info["workers"] == 2 and info["lost_workers"] == ["w2"]
    assert [r["code"] for r in partial.reasons] == [runinfo.FAILURE_STORM]  # the run's own reasons untouched


def test_a_snapshot_while_the_load_runs_counts_nothing_missing_and_says_what_was_open():
    tally = runinfo.Tally(streams_started=10, streams_recorded=8, refused_reason="1 message refused")
    info = runinfo.compose(IDENTITY, {}, None, None, tally, runinfo.PartialReasons(),
                           open_streams="2 streams were open")
    assert [r["code"] for r in info["partial_reasons"]] == [runinfo.REFUSED_MESSAGES, runinfo.RUNNING]
    assert info["ended_at"] is not None


def test_a_complete_run_is_not_partial():
    tally = runinfo.Tally(streams_started=3, streams_recorded=3, streams_on_disk=3)
    info = runinfo.compose(IDENTITY, {}, None, None, tally, runinfo.PartialReasons())
    assert info["partial"] is False and info["worker_health"] is None and info["workers"] == 0


def test_the_supervisor_marks_an_interrupted_run_so_its_verdict_is_the_signals(tmp_path):
    partial = runinfo.PartialReasons()
    partial.add(runinfo.SIGNAL, "stopped by a signal before the run time ended")
    runinfo.write(tmp_path, {"run_id": "r", **partial.fields()})
    assert runinfo.mark_interrupted(tmp_path, "SIGTERM")
    info = runinfo.read(tmp_path)
    assert info["interrupted_by"] == "SIGTERM" and info["partial_reason"] == "interrupted by SIGTERM"
    assert verdict.judge(summary_of(), info, {}).exit_code == 128 + signal.SIGTERM


def test_a_new_run_folder_that_cannot_be_written_is_refused_and_left_behind_by_nobody(tmp_path, monkeypatch):
    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(runinfo.RunDirError, match="cannot write results to .* \\(No space left on device\\)"):
        runinfo.create_run_dir(tmp_path, "r", "s")
    assert list(tmp_path.iterdir()) == []


# --- the early-stop guard ---

def record(outcome: Outcome, status: int = 500, code: str = "") -> SimpleNamespace:
    return SimpleNamespace(outcome=outcome, status=status, error_code=code, error="HTTP 500")


def guard(**load) -> tuple[EarlyStop, list]:
    stops: list = []
    return EarlyStop(Auth(), Load(**load), lambda code, text: stops.append((code, text))), stops


def test_the_first_streams_failing_the_same_way_stop_the_run_once():
    early, stops = guard(stop_after_failures=3)
    for _ in range(5):
        early.after_stream(record(Outcome.HTTP_ERROR))
    assert [code for code, _ in stops] == [runinfo.FAILURE_STORM] and "the first 3 streams" in stops[0][1]


@pytest.mark.parametrize("first", [Outcome.OK, Outcome.RESET])
def test_a_success_or_a_second_kind_of_failure_first_means_the_setup_works(first):
    early, stops = guard(stop_after_failures=3)
    early.after_stream(record(first, status=200))
    for _ in range(5):
        early.after_stream(record(Outcome.HTTP_ERROR))
    assert stops == []


def test_streams_never_sent_say_nothing_of_the_service():
    early, stops = guard(stop_after_failures=2)
    for _ in range(3):
        early.after_stream(record(Outcome.TOO_LARGE, status=0), sent=False)
    assert stops == []


def test_failed_authentication_stops_at_the_auth_limit():
    stops: list = []
    early = EarlyStop(Auth(method="token", stop_after_failures=2), Load(), lambda code, text: stops.append(code))
    for _ in range(2):
        early.after_stream(record(Outcome.AUTH_ERROR, status=401, code="APIG.0301"))
    assert stops == [runinfo.AUTH_STOP]


# --- the scenario picked once, for both commands ---

FLAGS = Namespace(path=None, method=None, header=None, body=None, body_file=None)


def test_one_choice_of_scenario_serves_sseload_run_and_locust(tmp_path):
    path = write_scenario(tmp_path / "s.toml", {"load": {"users": 3}})
    assert select(str(path), "http://h:1", FLAGS)[0].load.users == 3  # a file wins
    assert select(None, "http://h:1", FLAGS)[0].name == for_host("http://h:1").name  # -H: a service nobody described
    assert select(None, "http://127.0.0.1:5", FLAGS, embedded=True)[0] == default_scenario()  # the target it started
    assert select(None, None, FLAGS)[0] == default_scenario()
    scenario, host = select(None, "http://h:1/a?b=c", Namespace(**{**vars(FLAGS), "path": "/x", "method": "PUT"}))
    assert (scenario.request.method, scenario.request.path, host) == ("PUT", "/x", "http://h:1")


# --- the scenario's allowed values, declared beside their fields ---

def declared_choices() -> list[tuple[str, str, tuple]]:
    return [(table, f.name, f.metadata["choices"]) for table, cls in TABLES.items() for f in fields(cls)
            if "choices" in f.metadata]


def test_fields_declare_their_choices():
    declared = {(table, name) for table, name, _ in declared_choices()}
    assert {("auth", "method"), ("stream", "completion"), ("stream", "connection"), ("load", "shape"),
            ("load", "arrival"), ("body", "kind"), ("stream", "output")} <= declared


@pytest.mark.parametrize("table,name,choices", declared_choices(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_declared_choice_is_taken_and_anything_else_refused_naming_them(table, name, choices):
    is_list = isinstance(getattr(getattr(Scenario(), table), name), list)
    for choice in choices:
        value = choice.replace(":NAME", ":done")
        raw = {table: {name: [value] if is_list else value}}
        if (table, name) == ("load", "arrival") and value != "closed":
            raw["load"]["rate_per_s"] = 1.0
        from_dict(raw, "s.toml")
    with pytest.raises(ScenarioError) as err:
        from_dict({table: {name: ["nope"] if is_list else "nope"}}, "s.toml")
    said = str(err.value)
    assert said.startswith(f"s.toml: [{table}] {name} = ") and all(c in said for c in choices)


# --- the scenario compiled once ---

def test_every_stream_rule_is_copied_by_name_derived_once_or_the_protocols_own():
    from sseload.protocol.response import StreamRules
    from sseload.run.plan import DERIVED, PROTOCOL_ONLY, SAME_NAMES

    assert sorted([*SAME_NAMES, *DERIVED, *PROTOCOL_ONLY]) == sorted(f.name for f in fields(StreamRules))
    assert set(SAME_NAMES) >= {"completion", "connect_timeout_s", "read_timeout_s", "send_time_key", "tls_resume"}


def test_the_protocols_default_rules_are_the_default_scenarios():
    from sseload.protocol.response import StreamRules
    from sseload.run.plan import stream_rules

    assert stream_rules(Scenario(), "http://h/stream") == StreamRules()


def test_a_stream_value_of_the_scenario_reaches_the_rules():
    from sseload.run.plan import stream_rules

    scenario = from_dict({"stream": {"read_timeout_s": 7.0, "completion": "done", "send_time_key": "ts",
                                     "tls_resume": False, "max_redirects": 0, "grace_s": 1.0,
                                     "connection": "new"},
                          "gateway": {"limit_s": 9.0}}, "s.toml")
    rules = stream_rules(scenario, "http://h/v1/chat/completions")
    assert (rules.read_timeout_s, rules.completion, rules.send_time_key, rules.tls_resume, rules.max_redirects) == \
        (7.0, "done", "ts", False, 0)
    assert (rules.limit_s, rules.deadline_s, rules.new_connection, rules.llm) == (9.0, 10.0, True, True)


def test_the_gateway_limit_of_a_written_scenario_defaults_to_the_gateways():
    assert limit_s_of({}) == limit_s_of({"gateway": {}}) == DEFAULT_LIMIT_S
    assert limit_s_of({"gateway": {"limit_s": 5}}) == 5.0


# --- the harness and the reference target: [target] checked where the target starts ---

def test_a_bad_target_table_loads_and_is_refused_by_sseload_run_before_anything_starts(capsys, tmp_path):
    path = write_scenario(tmp_path / "t.toml", {"target": {"faults": {"meltdown": 0.5}}})
    assert load(path).target == {"faults": {"meltdown": 0.5}}
    code = cli.main(["run", str(path), "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown fault 'meltdown'" in err and f"{path}: [target]" in err
    assert not (tmp_path / "results").exists()
    path.write_text("[target]\nttfe_ms = 'soonish'\n")
    assert cli.main(["run", str(path), "--results-dir", str(tmp_path / "results")]) == 2
    assert "[target] ttfe_ms = 'soonish' is not a number or a distribution" in capsys.readouterr().err


def imports_of(path: Path) -> set[str]:
    """Every sseload module ``path`` imports, at its top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sseload"):
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("sseload")}
    return out


def test_only_the_commands_that_start_the_reference_target_import_it():
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if "target" not in p.relative_to(PACKAGE).parts
                   and any(m.startswith("sseload.target") for m in imports_of(p)))
    assert users == ["cli.py", "run/supervisor.py"]  # `sseload serve`, and the run that starts the target


def test_the_scenario_and_the_target_share_one_distribution_parser():
    from sseload.scenario.dist import Dist
    from sseload.target import config

    assert config.Dist is Dist


# --- the web UI tab (import cycles anywhere: tests/test_architecture.py) ---

def test_the_web_ui_tab_is_given_what_it_shows_and_imports_no_role():
    assert not {m for m in imports_of(PACKAGE / "run" / "webui.py") if m.startswith("sseload.run")}
