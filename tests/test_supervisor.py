"""`sseload run`'s supervisor and its one contract with the Locust processes it starts: the run-plan file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from sseload.run import runinfo, supervisor
from sseload.run.planfile import PlanFile
from tests import servers
from tests.conftest import LOCUSTFILE


def test_a_locust_stuck_past_its_run_time_is_stopped_then_killed(capsys):
    stuck = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); print('up', flush=True); time.sleep(600)"], stdout=subprocess.PIPE)
    stuck.stdout.readline()
    assert supervisor.wait_or_stop(stuck, hard_stop=time.monotonic() + 0.3, term_grace_s=0.3) == -signal.SIGKILL
    assert f"locust (pid {stuck.pid}) did not stop" in capsys.readouterr().err
    quick = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert supervisor.wait_or_stop(quick, hard_stop=time.monotonic() + 30) == 3


def locust_with_plan(tmp_path, url: str, plan_path, run_time: str = "1s") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1", "-r", "10",
                           "-t", run_time, "-H", url, "--sseload-plan", str(plan_path)],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path)


def test_a_child_does_what_its_run_plan_file_says(tmp_path, start_server):
    """It adopts the folder the plan names (and makes none), shows the progress line, and leaves the
    summary and the verdict to `sseload run` (no report of its own)."""
    srv = start_server(servers.paced_sse, events=2)
    run_dir = runinfo.create_run_dir(tmp_path / "elsewhere", "planned", "s")
    plan = PlanFile(results_dir=str(run_dir.parent), run_id="planned", embedded_target=False, run_s=3.0,
                    progress=True, orphan_grace_s=60.0).write(tmp_path)
    proc = locust_with_plan(tmp_path, srv.url, plan, run_time="3s")  # (the progress line comes every TICK_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["run_id"] == "planned" and info["streams_recorded"] > 0 and not info["embedded_target"]
    assert "s of 3 s |" in proc.stderr  # the progress line
    assert not (tmp_path / "results").exists() and not (run_dir / "report.html").exists()
    assert "outcomes:" not in proc.stdout  # the summary is the supervisor's


def test_a_child_whose_plan_names_no_folder_or_is_no_plan_stops_with_one_sentence(tmp_path, start_server):
    srv = start_server(servers.paced_sse, events=1)
    plan = PlanFile(results_dir=str(tmp_path / "results"), run_id="missing", embedded_target=False, run_s=1.0,
                    progress=False, orphan_grace_s=60.0).write(tmp_path)
    proc = locust_with_plan(tmp_path, srv.url, plan)
    assert proc.returncode == 2 and "does not exist: `sseload run` creates a run's folder" in proc.stderr
    plan.write_text('{"version": 1}')
    proc = locust_with_plan(tmp_path, srv.url, plan)
    assert proc.returncode == 2 and "not a run-plan file of this sseload" in proc.stderr
    assert "Traceback" not in proc.stderr and srv.connections == 0
