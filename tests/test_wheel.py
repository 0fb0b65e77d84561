"""sseload as a pip user gets it: the wheel installed (not editable) into a fresh virtual
environment and used from a directory that is not the repository: the ready scenarios are listed
and run by name, and plain `locust -f` with the packaged locustfile writes the same report and
exits 0."""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the fresh venv's python, a working directory outside the repository)."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("sseload-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # sseload's dependencies from this environment (no download); sseload itself only from the wheel
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(python), "-c", "import sseload; print(sseload.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), f"sseload was imported from {where}, not from the installed wheel"
    return python, elsewhere


def sseload(installed, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    python, cwd = installed
    return subprocess.run([str(python.parent / "sseload"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_the_ready_scenarios_are_listed_and_one_runs_by_name(installed):
    listed = sseload(installed, "scenarios")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines() if line and not line.startswith("run one")]
    assert {"embedded", "openai-chat", "openai-llm", "ramp", "soak"} <= set(names)
    ran = sseload(installed, "run", "embedded", "--users", "3", "--run-time", "2s", "--run-id", "byname")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    run_dir = installed[1] / "results" / "byname"
    assert (run_dir / "report.html").stat().st_size > 100_000  # the charts' ECharts is embedded
    assert json.loads((run_dir / "summary.json").read_text())["outcomes"].get("ok", 0) >= 3
    python, cwd = installed
    dataset = subprocess.run([str(python), "-c", "from sseload.scenario.load import resolve; "
                              "print((resolve('openai-llm').parent / 'prompts.jsonl').is_file())"],
                             cwd=cwd, capture_output=True, text=True)
    assert dataset.stdout.strip() == "True", dataset.stderr  # the LLM scenario's dataset ships beside it
    unknown = sseload(installed, "run", "nosuch")
    assert unknown.returncode == 2 and "openai-chat" in unknown.stderr and "Traceback" not in unknown.stderr


def test_plain_locust_with_the_packaged_locustfile_writes_the_report_and_exits_zero(installed, target):
    python, cwd = installed
    locustfile = sseload(installed, "locustfile").stdout.strip()
    assert Path(locustfile).is_file() and locustfile.startswith(str(python.parent.parent))
    url = target("--ttfe-ms", "20", "--gap-ms", "10", "--events", "20")
    done = subprocess.run(
        [str(python), "-m", "locust", "-f", locustfile, "--headless", "-u", "3", "-r", "3", "-t", "3s",
         "--scenario", "embedded", "-H", url, "--run-id", "plain"],
        cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    run_dir = cwd / "results" / "plain"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["outcomes"].get("ok", 0) >= 3 and summary["verdict"]["passed"]
    assert (run_dir / "report.html").exists()
    assert "outcomes:" in done.stdout  # sseload's one summary, as `sseload run` prints it
