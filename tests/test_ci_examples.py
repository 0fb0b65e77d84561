"""The CI examples in docs/ci/ work as written: their steps run here as the CI runners would run them
(GitHub Actions' `bash -e` per step, `if: always()` after a failure; GitLab's script in one shell), the
exit code gates the job, and the JUnit file and the run's folder they publish exist."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, side_by_side

CI = ROOT / "docs" / "ci"
INSTALL = "python -m pip install sseload"  # the one step not run here: this venv has sseload installed


def workspace(tmp_path: Path, failing: bool = False) -> Path:
    """A checkout as the runner has it: the example scenario at its path (its threshold made to fail)."""
    (tmp_path / "docs" / "ci").mkdir(parents=True)
    text = (CI / "sseload-ci.toml").read_text()
    if failing:
        text = text.replace("ttfe_p95_ms = 2000", "ttfe_p95_ms = 1")
    (tmp_path / "docs" / "ci" / "sseload-ci.toml").write_text(text)
    return tmp_path


def shell_env(extra: dict) -> dict:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # `sseload` as installed
    return {**os.environ, "PATH": path, **extra}


def github_expressions(text: str, env: dict) -> str:
    """`${{ ... }}` as GitHub would fill it in here: env.X, github.run_id / run_attempt; vars and secrets empty."""
    def value(match: re.Match) -> str:
        scope, _, name = match.group(1).strip().partition(".")
        return {"env": env.get(name, ""), "github": {"run_id": "7", "run_attempt": "1"}.get(name, "")}.get(scope, "")
    return re.sub(r"\$\{\{(.*?)\}\}", value, str(text))


def run_github_job(root: Path) -> tuple[bool, dict, Path]:
    """(whether the job passed, the `uses:` steps' inputs as resolved, the step summary file)."""
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    env = {k: github_expressions(v, {}) for k, v in workflow["env"].items()}
    summary = root / "step-summary.md"
    failed, used = False, {}
    for step in workflow["jobs"]["load-test"]["steps"]:
        if failed and step.get("if") != "always()":
            continue
        if "uses" in step:
            used[step["uses"].split("@")[0]] = {k: github_expressions(v, env) for k, v in step.get("with", {}).items()}
            continue
        if step["run"].strip() == INSTALL:
            continue
        step_env = {k: github_expressions(v, env) for k, v in (step.get("env") or {}).items()}
        proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=root, timeout=120, capture_output=True, text=True,
                              env=shell_env({**env, **step_env, "GITHUB_STEP_SUMMARY": str(summary)}))
        failed = failed or proc.returncode != 0
    return not failed, used, summary


def run_gitlab_job(root: Path) -> tuple[subprocess.CompletedProcess, dict, dict]:
    """(the job's script as it ran, the job as written, its variables as GitLab expands them)."""
    job = yaml.safe_load((CI / "gitlab-ci.yml").read_text())["load-test"]
    variables = {"CI_PIPELINE_ID": "11", "CI_JOB_ID": "12"}
    for name, value in job["variables"].items():  # GitLab expands a variable with those before it
        variables[name] = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), ""), value)
    script = "\n".join(["set -eo pipefail", *job["script"]])
    proc = subprocess.run(["bash", "-c", script], cwd=root, timeout=120, capture_output=True, text=True,
                          env=shell_env(variables))
    return proc, job, variables


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> dict:
    """Every test's job, side by side (each is one short `sseload run` with its report, in its own
    checkout): name -> (the checkout, what run_github_job or run_gitlab_job gave)."""
    roots = {"github": workspace(tmp_path_factory.mktemp("github")),
             "github_failing": workspace(tmp_path_factory.mktemp("github_failing"), failing=True)}
    if shutil.which("bash") is not None:
        roots["gitlab"] = workspace(tmp_path_factory.mktemp("gitlab"))

    def run(name: str, root: Path) -> tuple:
        return root, *(run_gitlab_job(root) if name == "gitlab" else run_github_job(root))

    return side_by_side(roots, run)


def test_the_github_workflow_passes_and_publishes_the_junit_and_the_run(jobs):
    root, passed, used, summary = jobs["github"]
    assert passed
    junit = glob.glob(str(root / used["mikepenz/action-junit-report"]["report_paths"]), recursive=True)
    assert [Path(p).name for p in junit] == ["thresholds.xml"] and 'failures="0"' in Path(junit[0]).read_text()
    uploaded = root / used["actions/upload-artifact"]["path"]
    assert (uploaded / "report.html").exists() and (uploaded / "streams.parquet").exists()
    assert "### sseload run `ci-7-1`" in summary.read_text()


def test_a_failed_threshold_fails_the_github_job_and_still_publishes_it(jobs):
    root, passed, used, summary = jobs["github_failing"]
    assert not passed
    (junit,) = glob.glob(str(root / used["mikepenz/action-junit-report"]["report_paths"]), recursive=True)
    assert "ttfe_p95_ms" in Path(junit).read_text() and "<failure" in Path(junit).read_text()
    assert (root / used["actions/upload-artifact"]["path"] / "report.html").exists()
    assert "**FAIL**" in summary.read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_gitlab_job_passes_and_keeps_the_junit_and_the_run(jobs):
    root, proc, job, variables = jobs["gitlab"]
    assert job["before_script"] == [INSTALL]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert job["artifacts"]["when"] == "always"
    kept = root / re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], job["artifacts"]["paths"][0])
    assert (kept / "report.html").exists()
    junit = glob.glob(str(root / re.sub(r"\$(\w+)", lambda m: variables[m.group(1)],
                                        job["artifacts"]["reports"]["junit"])), recursive=True)
    assert [Path(p).name for p in junit] == ["thresholds.xml"]
