"""A run's folder is its own (issue 28, item 5): created exclusively, never through a symbolic link,
from an id that is one safe folder name; a reused id is refused by `sseload run` and `locust -f` alike.

sseload.run.runinfo.create_run_dir is the one place that decides; `sseload run` calls it once and its
Locust children adopt the folder (adopt_run_dir); plain `locust -f` calls it itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sseload.run import runinfo
from sseload.run.runinfo import RunDirError, adopt_run_dir, create_run_dir
from tests import servers
from tests.conftest import LOCUSTFILE

LOCUSTFILE = str(LOCUSTFILE)
BAD_IDS = ["../x", "x\n", "a/b", "/tmp/abs", "a..b", ".hidden", "-dash", "", "two words", "x\0", "é", "x" * 129]


@pytest.fixture
def same_second(monkeypatch):
    """Every default id made in this process is the one of the same second."""
    monkeypatch.setattr(runinfo, "new_run_id", lambda name: f"20250101-120000-{name}")
    return "20250101-120000-"


# --- the rules, without processes ---

@pytest.mark.unit
@pytest.mark.parametrize("run_id", BAD_IDS)
def test_an_id_that_is_not_one_safe_folder_name_is_refused_before_anything_is_made(tmp_path, run_id):
    with pytest.raises(RunDirError) as err:
        create_run_dir(tmp_path / "results", run_id, "s")
    assert str(err.value).startswith(f"--run-id {run_id!r} must be one folder name inside")
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_an_explicit_id_gets_its_folder_once_and_is_refused_after(tmp_path):
    made = create_run_dir(tmp_path / "results", "nightly", "s")
    assert made == tmp_path / "results" / "nightly" and made.is_dir() and not made.is_symlink()
    with pytest.raises(RunDirError, match="nightly already exists; give another --run-id"):
        create_run_dir(tmp_path / "results", "nightly", "s")
    (made / "run.json").write_text("{}")
    with pytest.raises(RunDirError, match="nightly already holds a run; give another --run-id"):
        create_run_dir(tmp_path / "results", "nightly", "s")
    assert [p.name for p in made.iterdir()] == ["run.json"]


@pytest.mark.unit
def test_runs_of_the_same_second_get_folders_of_their_own(tmp_path, same_second):
    results = tmp_path / "results"
    made: list[Path] = []
    lock = threading.Lock()

    def one_run() -> None:
        path = create_run_dir(results, None, "../My scenario/v2")
        with lock:
            made.append(path)

    threads = [threading.Thread(target=one_run) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    base = f"{same_second}My-scenario-v2"
    assert sorted(p.name for p in made) == sorted([base] + [f"{base}-{n}" for n in range(2, 13)])


@pytest.mark.unit
def test_a_long_scenario_name_still_makes_a_valid_bounded_id(tmp_path):
    made = create_run_dir(tmp_path, None, "n" * 500)
    assert runinfo.check_run_id(made.name, tmp_path) and len(made.name) < runinfo.RUN_ID_MAX_CHARS


@pytest.mark.unit
@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_planted_at_the_default_folder_is_not_followed(tmp_path, same_second, dangling):
    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    results.mkdir()
    if not dangling:
        elsewhere.mkdir()
    (results / f"{same_second}s").symlink_to(elsewhere, target_is_directory=True)
    made = create_run_dir(results, None, "s")
    assert made.name == f"{same_second}s-2" and made.is_dir() and not made.is_symlink()
    assert not elsewhere.exists() if dangling else list(elsewhere.iterdir()) == []


@pytest.mark.unit
def test_a_symlink_planted_at_an_explicit_folder_is_refused(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "results" / "ci").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(RunDirError, match="ci is a symbolic link; sseload never writes a run through one"):
        create_run_dir(tmp_path / "results", "ci", "s")
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.unit
def test_a_managed_child_adopts_the_folder_its_supervisor_made(tmp_path):
    made = create_run_dir(tmp_path, "r", "s")
    assert adopt_run_dir(tmp_path, "r") == made
    (made / "locust_stats_history.csv").write_text("")  # Locust's own, which sseload run points there
    assert adopt_run_dir(tmp_path, "r") == made


@pytest.mark.unit
def test_a_managed_child_refuses_a_folder_that_is_missing_a_link_or_an_earlier_run(tmp_path):
    with pytest.raises(RunDirError, match="does not exist: `sseload run` creates a run's folder"):
        adopt_run_dir(tmp_path, "missing")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(RunDirError, match="is not the folder `sseload run` created"):
        adopt_run_dir(tmp_path, "link")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "run.json").write_text("{}")
    with pytest.raises(RunDirError, match=r"already holds files \(run.json\)"):
        adopt_run_dir(tmp_path, "used")
    with pytest.raises(RunDirError, match="must be one folder name"):
        adopt_run_dir(tmp_path, "../x")


# --- the same, through real processes ---

def plain_locust(tmp_path: Path, url: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--headless", "-u", "1", "-r", "10",
                           "-t", "1s", "-H", url, "--results-dir", str(tmp_path / "results"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


@pytest.mark.parametrize("run_id", ["../x", "x\n"], ids=["dotdot", "newline"])
def test_plain_locust_refuses_an_unsafe_run_id(tmp_path, start_server, run_id):
    srv = start_server(servers.paced_sse, events=1)
    proc = plain_locust(tmp_path, srv.url, "--run-id", run_id)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"sseload: --run-id {run_id!r} must be one folder name inside" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and srv.connections == 0


def test_a_reused_run_id_is_refused_by_plain_locust_and_by_sseload_run(tmp_path, start_server):
    srv = start_server(servers.paced_sse, events=1)
    earlier = tmp_path / "results" / "nightly"
    earlier.mkdir(parents=True)
    (earlier / "run.json").write_text('{"earlier": true}')
    proc = plain_locust(tmp_path, srv.url, "--run-id", "nightly")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"sseload: {earlier} already holds a run; give another --run-id" in proc.stderr
    run = subprocess.run([sys.executable, "-m", "sseload", "run", "-H", srv.url, "-u", "1", "-t", "1s", "--no-report",
                          "--results-dir", str(tmp_path / "results"), "--run-id", "nightly"],
                         capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert run.returncode == 2 and f"{earlier} already holds a run" in run.stderr, run.stderr[-2000:]
    assert [p.name for p in earlier.iterdir()] == ["run.json"] and (earlier / "run.json").read_text() == \
        '{"earlier": true}'
    assert srv.connections == 0


def test_plain_locust_does_not_follow_a_symlink_planted_at_its_default_folder(tmp_path, start_server):
    """The default id is predictable (the time and the scenario's name): links planted at the next
    minute's ids are passed over, the run goes beside them and the links' target stays empty."""
    srv = start_server(servers.paced_sse, events=1)
    results, target = tmp_path / "results", tmp_path / "attacker"
    results.mkdir()
    target.mkdir()
    name = runinfo.safe_name(f"127.0.0.1-{srv.port}")
    now = datetime.now()
    planted = set()
    for s in range(-2, 60):
        run_id = f"{(now + timedelta(seconds=s)).strftime('%Y%m%d-%H%M%S')}-{name}"
        (results / run_id).symlink_to(target, target_is_directory=True)
        planted.add(run_id)
    proc = plain_locust(tmp_path, srv.url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(target.iterdir()) == []
    (made,) = [p for p in results.iterdir() if p.name not in planted]
    assert not made.is_symlink() and made.name.endswith("-2") and (made / "run.json").exists()


def test_two_sseload_runs_in_the_same_second_get_two_folders(tmp_path, start_server):
    """The same scenario, no --run-id, started together at the start of a second: each run has its own
    folder, and each folder holds only its own run's streams."""
    srv = start_server(servers.paced_sse, events=3, gap_s=0.01)
    cmd = [sys.executable, "-m", "sseload", "run", "-H", srv.url, "-u", "2", "-r", "10", "-t", "1s", "--no-report",
           "--results-dir", str(tmp_path / "results")]
    time.sleep(1.05 - time.time() % 1)  # both start early in one second (start-up takes well under one)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    folders = sorted((tmp_path / "results").iterdir())
    assert len(folders) == 2, folders
    import pandas as pd

    for folder in folders:
        info = runinfo.read(folder)
        streams = pd.read_parquet(folder / "streams.parquet")
        assert info["run_id"] == folder.name and not info["partial"]
        assert info["streams_recorded"] == len(streams) == info["streams_started"] > 0
    a, b = (f.name for f in folders)
    if a[:15] == b[:15]:  # the same second, as intended: one took the -2
        assert b == f"{a}-2"
    assert os.path.commonpath(folders) == str(tmp_path / "results")
