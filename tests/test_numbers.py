"""Every number a user gives is checked once, against the range declared beside its key, and a value
out of range is exit 2 with one sentence naming the key and its range, never a traceback.

The tables below are built from the model itself (sseload.scenario.model's dataclasses, the
reference target's settings, sseload.target.config, which a scenario's [target] table sets, and the
parsers of the CLI and of `sseload serve`), so a key or flag added later is fed NaN, the infinities,
-1, 0 and a huge value too. A value its range allows (0 where 0 means "none") must pass; every other
must be refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import signal
import subprocess
import sys
import time
from dataclasses import fields

import psutil
import pytest

from sseload import cli
from sseload.record.metrics import THRESHOLDS
from sseload.run import runinfo
from sseload.run.supervisor import target_config
from sseload.run.verdict import BadInput
from sseload.scenario import memory
from sseload.scenario.load import from_dict
from sseload.scenario.model import TABLES, Gateway, ScenarioError
from sseload.scenario.ranges import number_text, range_text, threshold_range
from sseload.target import __main__ as serve
from sseload.target.config import TargetConfig
from tests.conftest import ROOT, sseload_run

#: The types of a number (a fault's rate: each value of the [target] faults table; a delay: a Dist).
NUMERIC_TYPES = ("int", "float", "list[int]", "int | None", "dict[str, float]", "Dist")
WHOLE_TYPES = ("int", "list[int]", "int | None")
TARGET_KEYS = TargetConfig.__dataclass_fields__
HUGE_INT, HUGE_FLOAT = 2**62, 1e18  # past every range, within TOML's integers
NAN, INF = float("nan"), float("inf")


def numbers_of_the_model() -> list[tuple[str, str, str, dict]]:
    """(table, key, type, range metadata) of every number a scenario table takes, [target]'s too: its
    numeric fields, and the text fields declared with a range (time spans, distributions)."""
    return [(table, f.name, f.type, f.metadata) for table, cls in {**TABLES, "target": TargetConfig}.items()
            for f in fields(cls) if f.type in NUMERIC_TYPES or "range" in f.metadata]


def inside(number, meta) -> bool:
    """The range's rule, as the docs state it: finite, at least (or more than) low, at most high."""
    low, high = meta["range"]
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
        return False
    return number <= high and (low is None or (number > low if meta["above"] else number >= low))


def fed(kind: str, meta: dict) -> list[tuple[object, bool]]:
    """The values fed to a key of this type, each with whether its range allows it."""
    if meta.get("form") == "span":
        return [(text, False) for text in ("nan", "inf", "-1", "0", "0s", f"{HUGE_INT}s")]
    if meta.get("form", "").startswith("dist"):  # of these, only a plain number its range holds is allowed
        return [(text, text in ("-1", "0", "1e18") and inside(float(text), meta))
                for text in ("nan", "inf", "uniform:1:inf", "-1", "0", "1e18", "lognormal:100:1e9")]
    whole = kind in WHOLE_TYPES
    values = [NAN, INF, -INF, -1 if whole else -1.0, 0 if whole else 0.0, HUGE_INT if whole else HUGE_FLOAT]
    out = [(v, inside(v, meta) and (not whole or isinstance(v, int))) for v in values]
    if kind == "list[int]":
        return [([v], ok) for v, ok in out]
    if kind.startswith("dict"):  # a table of numbers: a fault's rate
        return [({"reset": v}, ok) for v, ok in out]
    return out


CASES = [pytest.param(table, key, value, ok, meta, id=f"{table}.{key}={value!r}")
         for table, key, kind, meta in numbers_of_the_model() for value, ok in fed(kind, meta)]


@pytest.mark.unit
def test_every_number_of_the_model_declares_its_range():
    undeclared = [f"[{table}] {key}" for table, key, _, meta in numbers_of_the_model() if "range" not in meta]
    assert not undeclared, f"declare a range beside each (sseload.scenario.ranges.bounded): {undeclared}"
    unbounded = [f"[{table}] {key}" for table, key, _, meta in numbers_of_the_model()
                 if not math.isfinite(meta["range"][1])]
    assert not unbounded


@pytest.mark.unit
@pytest.mark.parametrize("table, key, value, ok, meta", CASES)
def test_each_number_is_refused_out_of_its_range_with_a_sentence_naming_key_and_range(table, key, value, ok, meta):
    raw = {table: {key: value}}

    def check():  # [target] is checked where the target is started (sseload run without a host)
        scenario = from_dict(raw, "numbers.toml")
        return target_config(scenario) if table == "target" else scenario

    if not ok:
        with pytest.raises((ScenarioError, BadInput)) as err:
            check()
        said = str(err.value)
        assert said.startswith("numbers.toml: ") and "\n" not in said
        assert f"[{table}]" in said and key in said and range_text(meta) in said, said
    else:
        check()  # 0 (or -1) where the range says it means something: allowed


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_each_threshold_takes_only_a_finite_number_in_its_range(name):
    meta = threshold_range(name)
    for value in (NAN, INF, -INF, -1.0, 0.0, HUGE_FLOAT):
        if inside(value, meta):
            assert from_dict({"thresholds": {name: value}}, "t.toml").thresholds[name] == value
            continue
        with pytest.raises(ScenarioError, match=re.escape(range_text(meta))):
            from_dict({"thresholds": {name: value}}, "t.toml")


def numeric_flags() -> dict[str, set[str]]:
    """dest -> the subcommands whose parser takes it as a number (int or float)."""
    found: dict[str, set[str]] = {}
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in sub.choices.items():
        for action in parser._actions:
            if action.type in (int, float):
                found.setdefault(action.dest, set()).add(command)
    return found


@pytest.mark.unit
def test_every_numeric_flag_declares_its_range():
    assert set(numeric_flags()) <= set(cli.FLAG_RANGES), "declare each numeric flag's range in cli.FLAG_RANGES"


@pytest.mark.unit
def test_the_targets_gateway_keys_take_the_ranges_of_gateways():
    """[gateway]'s limit_s and max_body_bytes are the target's unless [target] sets them: one range each."""
    for key in ("limit_s", "max_body_bytes"):
        assert TARGET_KEYS[key].metadata == Gateway.__dataclass_fields__[key].metadata


class Started(AssertionError):
    """The values passed: a process would have been started."""


@pytest.fixture
def no_process(monkeypatch):
    def tripwire(*args, **kwargs):
        raise Started()

    monkeypatch.setattr(subprocess, "Popen", tripwire)


def flag_argv(tmp_path, dest: str, value: str) -> list[str]:
    """The command line giving ``dest`` the text ``value``."""
    flag = {"users": "--users", "spawn_rate": "--spawn-rate", "run_time": "--run-time", "workers": "--workers",
            "tolerance": "--tolerance"}[dest]
    if dest == "tolerance":
        return ["compare", str(tmp_path / "a"), str(tmp_path / "b"), f"{flag}={value}"]
    return ["run", f"{flag}={value}", "--results-dir", str(tmp_path / "results")]


FLAG_VALUES = ("nan", "inf", "-inf", "-1", "0", str(HUGE_INT))
FLAG_CASES = [pytest.param(dest, value, id=f"{dest}={value}") for dest in sorted(cli.FLAG_RANGES)
              for value in FLAG_VALUES]


def flag_type(dest: str) -> type:
    """How argparse reads the flag: int, float, or text (a time span)."""
    return next((action.type for action in all_actions(cli.build_parser()) if action.dest == dest and action.type),
                str)


def all_actions(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_actions(sub)
        else:
            yield action


@pytest.mark.unit
@pytest.mark.parametrize("dest, value", FLAG_CASES)
def test_each_numeric_flag_is_refused_out_of_its_range_with_a_sentence(capsys, tmp_path, no_process, dest, value):
    meta, parse = cli.FLAG_RANGES[dest], flag_type(dest)
    try:
        number = parse(value)
    except ValueError:  # not an int: argparse refuses it first, exit 2 and its own sentence
        with pytest.raises(SystemExit) as exit_:
            cli.main(flag_argv(tmp_path, dest, value))
        assert exit_.value.code == 2 and f"invalid {parse.__name__} value: '{value}'" in capsys.readouterr().err
        return
    ok = parse is not str and inside(number, meta)  # no time span fed here is one
    try:
        code = cli.main(flag_argv(tmp_path, dest, value))
    except Started:
        assert ok, f"{dest}={value} was let through"
        return
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("sseload: ") and err.count("\n") == 1 and "Traceback" not in err, err
    if not ok:
        assert f" is {number!r}: it " in err and (range_text(meta) in err or "is not a time span" in err), err
    else:  # compare: the tolerance passed, the folders it names are no runs
        assert "is not a run directory" in err


# --- `sseload serve`: each flag that sets a [target] key takes its range ---

def serve_numeric_flags() -> dict[str, type]:
    """dest -> how `sseload serve` reads it, for each flag taking a number (int, float) or a delay (text
    a key declares a distribution's range for)."""
    return {a.dest: a.type or str for a in serve.build_parser()._actions
            if a.type in (int, float) or (a.dest in TARGET_KEYS and TARGET_KEYS[a.dest].metadata.get("form"))}


@pytest.mark.unit
def test_every_numeric_serve_flag_sets_a_key_that_declares_its_range():
    flags = serve_numeric_flags()
    assert flags and set(flags) <= set(serve.KEY_FLAGS), "a numeric flag of sseload serve sets a [target] key"
    assert all("range" in TARGET_KEYS[dest].metadata for dest in flags)


@pytest.fixture
def no_target(monkeypatch):
    """`sseload serve` stops where it would start listening."""
    def tripwire():
        raise Started()

    monkeypatch.setattr(serve, "_raise_fd_limit", tripwire)


SERVE_CASES = [pytest.param(dest, value, id=f"serve-{dest}={value}") for dest in sorted(serve_numeric_flags())
               for value in (*FLAG_VALUES, "uniform:1:inf", "1e18")]


@pytest.mark.unit
@pytest.mark.parametrize("dest, value", SERVE_CASES)
def test_each_numeric_serve_flag_is_refused_out_of_its_keys_range_with_a_sentence(capsys, no_target, dest, value):
    meta, parse = TARGET_KEYS[dest].metadata, serve_numeric_flags()[dest]
    flag = serve.flag_of(dest)
    try:
        number = parse(value)
    except ValueError:  # not an int (or float): argparse refuses it first, exit 2 and its own sentence
        with pytest.raises(SystemExit) as exit_:
            serve.main([f"{flag}={value}"])
        assert exit_.value.code == 2 and f"invalid {parse.__name__} value: '{value}'" in capsys.readouterr().err
        return
    if parse is str:  # a delay: of these, only a plain number its range holds
        ok = value in ("-1", "0", "1e18") and inside(float(value), meta)
    else:
        ok = inside(number, meta) and (parse is float or isinstance(number, int))
    try:
        code = serve.main([f"{flag}={value}"])
    except Started:
        assert ok, f"{flag}={value} was let through"
        return
    err = capsys.readouterr().err
    assert not ok and code == 2, (code, err)
    assert err.startswith(f"sseload serve: {flag} is {number!r}: it ") and err.count("\n") == 1, err
    assert range_text(meta) in err and "Traceback" not in err, err


@pytest.mark.unit
@pytest.mark.parametrize("rate", FLAG_VALUES)
def test_a_fault_rate_flag_is_refused_out_of_the_rates_range_with_a_sentence(capsys, no_target, rate):
    meta = TARGET_KEYS["faults"].metadata
    try:
        code = serve.main(["--fault", f"reset={rate}"])
    except Started:
        assert inside(float(rate), meta)
        return
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"sseload serve: --fault reset is {float(rate)!r}: it ") and \
        range_text(meta) in err and err.count("\n") == 1, err


@pytest.mark.unit
def test_the_docs_give_every_number_its_range():
    """docs/scenarios.md's row of each number says its range in the words the check uses."""
    doc = (ROOT / "docs" / "scenarios.md").read_text()
    sections = {part.split("\n", 1)[0].strip(): part for part in doc.split("\n## ")}
    wrong = []
    for table, key, _, meta in numbers_of_the_model():
        rows = [line for line in sections.get(f"[{table}]", "").splitlines()
                if line.startswith("| ") and f"`{key}`" in line.split(" | ")[0]]
        if not rows or f"Allowed: {range_text(meta)} |" not in rows[0]:
            wrong.append(f"[{table}] {key}: end its row with 'Allowed: {range_text(meta)}'")
    assert not wrong, "\n".join(wrong)
    thresholds = sections["[thresholds]"]
    assert "at least 0 and at most 1 (a share of streams)" in thresholds
    assert f"any other at least 0 and at most {number_text(threshold_range('min_streams')['range'][1])}" in thresholds


# --- JSON outputs stay JSON ---

@pytest.mark.unit
def test_run_json_writes_numbers_that_are_not_finite_as_null(tmp_path):
    runinfo.write(tmp_path, {"run_id": "r", "thresholds": {"ttfe_p95_ms": NAN}, "rates": [1.0, INF, -INF]})
    text = (tmp_path / "run.json").read_text()
    written = json.loads(text, parse_constant=lambda name: pytest.fail(f"run.json holds {name}, not JSON"))
    assert written == {"run_id": "r", "thresholds": {"ttfe_p95_ms": None}, "rates": [1.0, None, None]}


# --- a -u that does not fit in memory ---

@pytest.mark.unit
def test_memory_available_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:   24000000 kB\n")
    assert memory.available_bytes(meminfo) == 24_000_000 * 1024
    assert memory.available_bytes(tmp_path / "none") is None


@pytest.mark.unit
def test_users_that_fit_in_memory_pass_and_those_that_do_not_are_refused_with_the_estimate():
    gib = 1 << 30
    assert memory.too_many(1000, "-u/--users is 1000", 4 * gib) is None
    assert memory.too_many(10**6, "-u/--users is 1000000", None) is None  # nothing known: nothing refused
    said = memory.too_many(10**6, "-u/--users is 1000000", 4 * gib)
    assert said.startswith("-u/--users is 1000000: those users need about 30.5 GiB of memory")
    assert "4.0 GiB available" in said and "131,072 fit here" in said and "workers" in said


@pytest.mark.unit
def test_sseload_run_refuses_a_users_flag_past_the_machines_memory(capsys, tmp_path, no_process, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 30)
    code = cli.main(["run", "-u", "100000", "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("sseload: -u/--users is 100000: those users need about 3.1 GiB") and \
        err.count("\n") == 1
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.unit
def test_a_shapes_peak_is_what_must_fit():
    from sseload.scenario.model import Load

    assert memory.peak_users(Load(shape="spike", users=50, spike_users=150)) == 200
    assert memory.peak_users(Load(shape="ramp", start_users=300, users=100)) == 300
    assert memory.peak_users(Load(users=20)) == 20


# --- end to end: `sseload run` as a user runs it ---

@pytest.mark.parametrize("args, scenario, said", [
    ((), {"gateway": {"limit_s": NAN}}, "[gateway] limit_s = nan must be more than 0"),
    ((), {"gateway": {"limit_s": INF}}, "[gateway] limit_s = inf must be more than 0"),
    ((), {"stream": {"read_timeout_s": -1.0}}, "[stream] read_timeout_s = -1.0 must be more than 0"),
    ((), {"stream": {"connect_timeout_s": 0.0}}, "[stream] connect_timeout_s = 0.0 must be more than 0"),
    ((), {"stream": {"grace_s": -100.0}}, "[stream] grace_s = -100.0 must be at least 0"),
    ((), {"thresholds": {"ttfe_p95_ms": NAN}}, "[thresholds] ttfe_p95_ms = nan must be at least 0"),
    ((), {"target": {"events": -1}}, "[target] events = -1 must be at least 0 and at most 1,000,000"),
    ((), {"target": {"stall_s": INF}}, "[target] stall_s = inf must be at least 0"),
    (("-H", "http://127.0.0.1:65536/"), None, "-H/--host: '127.0.0.1:65536' has no port"),
    (("-u", "-1"), None, "-u/--users is -1: it must be at least 1"),
    (("-r", "nan"), None, "-r/--spawn-rate is nan: it must be more than 0"),
])
def test_sseload_run_refuses_a_number_out_of_range_with_exit_2_and_one_sentence(tmp_path, args, scenario, said):
    result = sseload_run(tmp_path, *args, scenario=scenario, timeout=60)
    assert result.code == 2, result.stderr
    assert result.stderr.startswith("sseload: ") and result.stderr.count("\n") == 1, result.stderr
    assert said in result.stderr and "Traceback" not in result.stderr
    assert not result.run_dir.exists()


@pytest.mark.unit
def test_a_spawn_lets_the_event_loop_run_between_steps_of_a_hundred_users():
    """However many users a spawn step adds, the runner adds them a hundred at a time and the event
    loop (streams, the progress line, a signal's handler) runs in between (sseload.run.process)."""
    import gevent

    from sseload.run import process

    calls, ticks = [], [0]

    class Runner:
        def spawn_users(self, counts, wait=False):
            calls.append((dict(counts), wait, ticks[0]))
            return [object()] * sum(counts.values())

    def ticker():
        while True:
            ticks[0] += 1
            gevent.sleep(0)

    runner = Runner()
    process.spawn_in_steps(runner)
    process.spawn_in_steps(runner)  # once only
    loop = gevent.spawn(ticker)
    users = runner.spawn_users({"SSEUser": 250, "Other": 60}, wait=True)
    loop.kill()
    assert len(users) == 310
    assert [(counts, wait) for counts, wait, _ in calls] == [
        ({"SSEUser": 100}, False), ({"SSEUser": 100}, False), ({"SSEUser": 50, "Other": 50}, False),
        ({"Other": 10}, True)]
    assert [tick for *_, tick in calls] == sorted({tick for *_, tick in calls})  # the loop ran before each next step
    assert runner.spawn_users({}) == [] and calls[-1][:2] == ({}, False)  # Locust's own bookkeeping still runs


def locust_children(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):  # gone, or a zombie, since it was listed
            if "locust" in " ".join(child.cmdline()):
                found.append(child)
    return found


def test_a_child_spawning_many_users_is_gone_soon_after_sseload_is_killed(tmp_path):
    """sseload SIGKILLed while its Locust child spawns users at a rate as high as their number: the
    child's event loop runs between steps of the spawn, so the SIGTERM sseload's death sends it is
    handled and it stops in order, long before the orphan watchdog's grace (the stop timeout plus 30 s).
    The bound is wait_procs' timeout. (Where the spawn takes less than that bound, a child that only
    handles the signal after it would pass too; test_a_spawn_lets_the_event_loop_run... holds the step.)"""
    users = min(500_000, (memory.available_bytes() or 0) // memory.USER_BYTES // 2)
    if users < 50_000:
        pytest.skip("too little memory here to spawn for long")
    proc = subprocess.Popen([sys.executable, "-m", "sseload", "run", "-u", str(users), "-r", str(users), "-t", "120s",
                             "--results-dir", str(tmp_path / "results"), "--no-report"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        for _ in range(600):  # the bound on a start that never comes
            if proc.poll() is not None or locust_children(proc.pid):
                break
            time.sleep(0.1)
        assert proc.poll() is None and locust_children(proc.pid), "sseload's Locust child never started"
        time.sleep(3)  # spawning: a loop of seconds with this many users
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _, alive = psutil.wait_procs(children, timeout=40)
    for orphan in alive:  # never leave them running, even when the test fails
        orphan.kill()
    assert not alive, [p.pid for p in alive]

