"""The command line: bad values are refused before anything starts, with one sentence and exit 2; help reads well.

Every refusal is checked by calling ``sseload.cli.main`` in this process: the checks come before the
embedded target or Locust would start, so each call returns in milliseconds. A tripwire on
``subprocess.Popen`` turns a check that came too late into a failure instead of a started run.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

import sseload
from sseload import cli
from sseload.run import runinfo, supervisor
from sseload.scenario.load import default_scenario, select
from sseload.scenario.model import ScenarioError
from tests.conftest import write_scenario

pytestmark = pytest.mark.unit

MOST_WORKERS = cli.WORKERS_PER_CORE * (os.cpu_count() or 1)


class Started(AssertionError):
    """A process was started although the values were wrong."""


@pytest.fixture
def no_process(monkeypatch):
    def tripwire(*args, **kwargs):
        raise Started(f"a process was started: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", tripwire)


def refused(capsys, tmp_path, *argv: str) -> str:
    """Run ``sseload run ARGV`` into tmp_path/results; assert exit 2 and no run folder; return the sentence."""
    results = tmp_path / "results"
    code = cli.main(["run", *argv, "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("sseload: ") and err.count("\n") == 1, err  # one sentence, no traceback
    assert not results.exists() or not any(results.iterdir()), "a run folder was created"
    return err


# --- each bad value, refused with the flag and the fix ---

@pytest.mark.parametrize("users", ["0", "-3"])
def test_users_below_one_are_refused(capsys, tmp_path, no_process, users):
    err = refused(capsys, tmp_path, "-u", users)
    assert "-u/--users" in err and f"is {users}" in err and "at least 1" in err and "-u 10" in err


def test_users_that_are_not_a_number_are_refused_by_argparse(capsys, tmp_path, no_process):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "-u", "ten", "--results-dir", str(tmp_path / "results")])
    assert exit_.value.code == 2
    assert "-u/--users: invalid int value: 'ten'" in capsys.readouterr().err


@pytest.mark.parametrize("run_time", ["0", "0s", "0m0s"])
def test_a_run_time_of_zero_is_refused_rather_than_running_forever(capsys, tmp_path, no_process, run_time):
    err = refused(capsys, tmp_path, "-t", run_time)
    assert f"-t/--run-time is {run_time!r}: it must be more than 0 and at most" in err and "e.g. -t 30s" in err


@pytest.mark.parametrize("argv,shown", [
    (["-t", "-5"], "'-5'"),
    (["--run-time=-5s"], "'-5s'"),
    (["-t", "soon"], "'soon'"),
    (["-t", "5 minutes"], "'5 minutes'"),
    (["-t", "1.5m"], "'1.5m'"),
])
def test_a_negative_or_malformed_run_time_is_refused_before_the_target_starts(capsys, tmp_path, no_process,
                                                                               argv, shown):
    err = refused(capsys, tmp_path, *argv)
    assert f"-t/--run-time is {shown}: it is not a time span" in err and "e.g. 30s, 5m or 1h30m" in err


@pytest.mark.parametrize("rate", ["0", "-2", "nan", "inf"])
def test_a_spawn_rate_that_is_not_positive_is_refused(capsys, tmp_path, no_process, rate):
    err = refused(capsys, tmp_path, f"--spawn-rate={rate}")
    assert "-r/--spawn-rate is " in err and "must be more than 0 and at most" in err and "-r 10" in err


def test_negative_workers_are_refused(capsys, tmp_path, no_process):
    err = refused(capsys, tmp_path, "--workers", "-1")
    assert "--workers is -1: it must be at least 0" in err and "(0: no workers;" in err


def test_far_more_workers_than_cores_are_refused(capsys, tmp_path, no_process):
    err = refused(capsys, tmp_path, "--workers", "1000")
    cores = os.cpu_count() or 1
    assert "--workers is 1000" in err
    per_core = cli.WORKERS_PER_CORE
    assert f"at most {MOST_WORKERS} (0: no workers; {per_core} for each of this machine's {cores} cores)" in err


@pytest.mark.parametrize("run_id", ["../escaped", "a/b", "/tmp/abs", "a..b", ".hidden", "-dash", "", "two words",
                                    "x\n", "x" * 129])
def test_a_run_id_that_is_not_one_folder_name_is_refused(capsys, tmp_path, no_process, run_id):
    err = refused(capsys, tmp_path, f"--run-id={run_id}")
    assert f"--run-id {run_id!r} must be one folder name inside" in err and "without '..'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "something was written outside the results folder"


def test_a_run_id_that_already_holds_a_run_is_refused_and_the_earlier_run_kept(capsys, tmp_path, no_process):
    earlier = tmp_path / "results" / "nightly"
    earlier.mkdir(parents=True)
    (earlier / "run.json").write_text("{}")
    code = cli.main(["run", "--run-id", "nightly", "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{earlier} already holds a run; give another --run-id" in err
    assert [p.name for p in earlier.iterdir()] == ["run.json"] and (earlier / "run.json").read_text() == "{}"


def test_a_scenario_value_is_checked_too_and_named_by_its_table(capsys, tmp_path, no_process):
    path = write_scenario(tmp_path / "zero.toml", {"load": {"run_time": "0s"}})
    err = refused(capsys, tmp_path, str(path))
    assert f"{path}: [load] run_time = '0s' must be more than 0 and at most" in err


def test_a_flag_overrides_the_scenario_value(tmp_path):
    path = write_scenario(tmp_path / "slow.toml", {"load": {"run_time": "1h", "spawn_rate": 0.5}})
    args = cli.build_parser().parse_args(["run", str(path), "-t", "3s", "-r", "5",
                                          "--results-dir", str(tmp_path / "results")])
    settings = supervisor.run_settings(args, select(args.scenario, args.host, args)[0])
    assert (settings.run_time, settings.spawn_rate) == ("3s", 5.0)


# --- good values pass ---

def test_good_values_pass_and_the_run_folder_is_created_last(tmp_path):
    args = cli.build_parser().parse_args(["run", "-u", "1", "-r", "0.5", "-t", "1h30m", "--workers",
                                          str(MOST_WORKERS), "--run-id", "ci", "--results-dir",
                                          str(tmp_path / "results")])
    settings = supervisor.run_settings(args, default_scenario())
    assert (settings.users, settings.spawn_rate, settings.run_time, settings.workers) == (1, 0.5, "1h30m",
                                                                                         MOST_WORKERS)
    assert settings.run_dir == tmp_path / "results" / "ci" and settings.run_dir.is_dir()


def test_a_run_id_whose_folder_exists_even_empty_is_refused(capsys, tmp_path, no_process):
    (tmp_path / "results" / "ci").mkdir(parents=True)
    code = cli.main(["run", "--run-id", "ci", "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"{tmp_path / 'results' / 'ci'} already exists; give another --run-id" in err


def test_a_generated_run_id_is_one_safe_folder_name_and_never_an_earlier_run(tmp_path, monkeypatch):
    monkeypatch.setattr(runinfo, "new_run_id", lambda name: f"20250101-120000-{name}")
    scenario = default_scenario()
    scenario.name = "../My scenario/v2"
    args = cli.build_parser().parse_args(["run", "--results-dir", str(tmp_path / "results")])
    first = supervisor.run_settings(args, scenario).run_id
    assert first == "20250101-120000-My-scenario-v2" and runinfo.check_run_id(first, tmp_path)
    assert (tmp_path / "results" / first).is_dir()  # taken: the next run of the same second goes beside it
    assert supervisor.run_settings(args, scenario).run_id == f"{first}-2"


# --- messages and help ---

@pytest.mark.parametrize("toml,message", [
    ("[load]\nusers = 'ten'\n", "[load]: users = 'ten' should be an integer (like 10)"),
    ("[load]\nspawn_rate = 'fast'\n", "[load]: spawn_rate = 'fast' should be a number (like 10.0)"),
    ("[stream]\ntruth = 'yes'\n", "[stream]: truth = 'yes' should be true or false (like true)"),
    ("[request]\nmethod = 5\n", "[request]: method = 5 should be a string (like 'POST')"),
    ("[request]\nheaders = 'x'\n", "[request]: headers = 'x' should be a table (like {'Content-Type'"),
    ("[body]\nsizes = 5\n", "[body]: sizes = 5 should be a list"),
])
def test_wrong_types_in_a_scenario_read_as_plain_words(tmp_path, toml, message):
    path = tmp_path / "typed.toml"
    path.write_text(toml)
    with pytest.raises(ScenarioError) as err:
        sseload.scenario.load.load(path)
    assert message in str(err.value)
    assert "a int" not in str(err.value) and "a bool" not in str(err.value)


def test_version_prints_sseloads_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"sseload {sseload.__version__}\n"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["check", "--help"], ["compare", "--help"]])
def test_help_shows_no_markup(capsys, argv):
    with pytest.raises(SystemExit):
        cli.main(argv)
    out = capsys.readouterr().out
    assert "`" not in out
    if argv == ["--help"]:
        assert "sseload: run load, serve the reference target" in out


def test_run_help_lists_the_exit_codes_and_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "exit codes:" in out
    for code, meaning in [("0", "the run passed"), ("1", "a threshold failed"), ("2", "bad input"),
                          ("3", "the run recorded nothing"), ("128+N", "stopped by signal N")]:
        assert f"{code} {meaning}" in out
    for default in ["(default: results)", "(default: 0, no workers)", "(default: WARNING)",
                    "(default: [load] run_time, 10s)", "(default: the scenario's [load] users, 10)",
                    "(default: [load] spawn_rate, 10)"]:
        assert default in out


def test_every_option_of_every_subcommand_says_its_default():
    subparsers = next(a for a in cli.build_parser()._actions if a.dest == "command")
    for name, parser in subparsers.choices.items():
        if name == "serve":  # its own parser, in sseload.target
            continue
        for action in parser._actions:
            if action.dest == "help" or (not action.option_strings and action.nargs is None):
                continue  # -h, and required positionals, which have no default
            assert "(default: " in (action.help or ""), f"sseload {name} {action.option_strings or action.dest}"


@pytest.mark.parametrize("argv", [["--version"], ["run", "-t", "0"]])
def test_version_and_refusals_import_neither_locust_nor_gevent(capsys, tmp_path, no_process, argv):
    """Locust's import takes a second or more; neither path needs it (a fresh process: see test_runinfo)."""
    before = set(sys.modules)
    with contextlib.suppress(SystemExit):
        cli.main([*argv, "--results-dir", str(tmp_path)] if argv[0] == "run" else argv)
    capsys.readouterr()
    assert sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("locust", "gevent", "httptools")) == []
