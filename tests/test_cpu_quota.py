"""The CPU a worker may use: its cgroup's quota (v1 or v2, its own or a parent's) and throttling.

Each test lays out a small /proc and /sys/fs/cgroup tree of its own, as the kernel shows them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from array import array
from pathlib import Path

import pytest

from sseload.record.cpu_quota import cpu_quota
from sseload.record.health import HealthMonitor, merge_summaries

pytestmark = pytest.mark.usefixtures("no_reader_lags_of_this_process")  # the health numbers are the tests' own

V1_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
)
V2_MOUNTS = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def lay_out(root: Path, proc_cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(proc_cgroup)
    (root / "proc/self/mountinfo").write_text(mountinfo)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.unit
def test_a_v2_quota_is_read_from_cpu_max(tmp_path):
    root = lay_out(tmp_path, "0::/pod/worker\n", V2_MOUNTS, {
        "sys/fs/cgroup/pod/worker/cpu.max": "50000 100000\n",
        "sys/fs/cgroup/pod/worker/cpu.stat": "usage_usec 9\nnr_periods 40\nnr_throttled 3\nthrottled_usec 7\n",
    })
    quota = cpu_quota(root)
    assert (quota.cores, quota.period_us) == (0.5, 100_000)
    assert quota.throttled() == (40, 3)


@pytest.mark.unit
def test_a_v1_quota_is_read_from_the_cfs_files_of_the_cpu_hierarchy(tmp_path):
    root = lay_out(tmp_path, "5:memory:/a\n4:cpu,cpuacct:/a/b\n0::/\n", V1_MOUNTS, {
        "sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_quota_us": "35000\n",
        "sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_period_us": "100000\n",
        "sys/fs/cgroup/memory/a/cpu.cfs_quota_us": "1000\n",  # not the cpu hierarchy: ignored
    })
    assert cpu_quota(root).cores == 0.35


@pytest.mark.unit
def test_a_tighter_quota_on_a_parent_counts_as_in_a_kubernetes_pod(tmp_path):
    root = lay_out(tmp_path, "0::/kubepods/pod1/ctr\n", V2_MOUNTS, {
        "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "max 100000\n",
        "sys/fs/cgroup/kubepods/pod1/cpu.max": "25000 100000\n",
        "sys/fs/cgroup/kubepods/cpu.max": "400000 100000\n",
    })
    quota = cpu_quota(root)
    assert quota.cores == 0.25 and quota.cgroup_dir == root / "sys/fs/cgroup/kubepods/pod1"


@pytest.mark.unit
def test_inside_a_container_the_mount_root_is_the_containers_own_cgroup(tmp_path):
    mounts = "30 23 0:27 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n"
    root = lay_out(tmp_path, "0::/docker/abc\n", mounts, {"sys/fs/cgroup/cpu.max": "150000 100000\n"})
    assert cpu_quota(root).cores == 1.5


@pytest.mark.unit
@pytest.mark.parametrize("files", [
    {"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
    {},  # nothing readable
    {"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "garbage\n"},
])
def test_no_quota_or_unreadable_files_mean_none(tmp_path, files):
    assert cpu_quota(lay_out(tmp_path, "4:cpu,cpuacct:/\n", V1_MOUNTS, files)) is None


@pytest.mark.unit
def test_no_proc_at_all_means_none(tmp_path):
    assert cpu_quota(tmp_path) is None


@pytest.mark.unit
def test_cpu_over_90_percent_of_the_quota_skews_the_measurement(tmp_path):
    root = lay_out(tmp_path, "0::/w\n", V2_MOUNTS, {"sys/fs/cgroup/w/cpu.max": "50000 100000\n"})
    health = HealthMonitor(quota=cpu_quota(root))
    health.seconds = [(0.0, 47.0, 10, 0.5)] * 10  # 47% of a core is 94% of half a core
    summary = health.summary()
    assert summary["cpu_quota_cores"] == 0.5
    assert summary["skew_reasons"] == ["harness CPU reached 47% > 45% (90% of its 0.5-core CPU quota)"]


@pytest.mark.unit
def test_throttling_is_reported_and_the_readers_lag_decides_whether_it_mattered(tmp_path):
    stat = "sys/fs/cgroup/w/cpu.stat"
    root = lay_out(tmp_path, "0::/w\n", V2_MOUNTS, {"sys/fs/cgroup/w/cpu.max": "50000 100000\n",
                                                     stat: "nr_periods 100\nnr_throttled 10\n"})
    health = HealthMonitor(quota=cpu_quota(root))
    health.mark_start()
    (root / stat).write_text("nr_periods 300\nnr_throttled 30\n")  # 20 of the run's 200 periods
    health.seconds = [(0.0, 30.0, 10, 0.5)] * 10
    health.reader_lag_ns = array("q", [200_000] * 100)
    assert health.summary()["cpu_throttled_percent"] == 10.0
    assert not health.summary()["skewed"]
    health.reader_lag_ns = array("q", [7_000_000] * 100)  # the stalls made the reader late
    assert health.summary()["skew_reasons"] == ["reader thread lag p99 7.0 ms > 5 ms"]


@pytest.mark.unit
def test_without_a_quota_the_limit_is_90_percent_of_a_core():
    health = HealthMonitor(quota=None)
    health.seconds = [(0.0, 85.0, 10, 0.5)] * 10
    summary = health.summary()
    assert not summary["skewed"] and summary["cpu_quota_cores"] is None


@pytest.mark.unit
def test_workers_merge_to_the_tightest_quota_and_the_most_throttled():
    a = {"cpu_quota_cores": 1.0, "cpu_throttled_percent": 0.0, "skew_reasons": []}
    b = {"cpu_quota_cores": 0.5, "cpu_throttled_percent": 4.0, "skew_reasons": []}
    merged = merge_summaries([a, b, {"cpu_quota_cores": None, "cpu_throttled_percent": None}])
    assert (merged["cpu_quota_cores"], merged["cpu_throttled_percent"]) == (0.5, 4.0)


@pytest.mark.unit
def test_the_console_line_says_what_the_cpu_figure_is_a_share_of():
    from sseload.views.console import cpu_usage

    assert cpu_usage({"cpu_max_percent": 40.0}) == "CPU max 40%"
    assert (cpu_usage({"cpu_max_percent": 33.4, "cpu_quota_cores": 0.35, "cpu_throttled_percent": 0.25})
            == "CPU max 33% of a 0.35-core quota (throttled in 0.2% of its periods)")


@pytest.fixture
def half_core_cgroup():
    """A real CPU cgroup capped at half a core, where this machine lets us make one (root), else skip."""
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    name = f"sseload-test-{os.getpid()}"
    try:
        if (v1 / "cpu.cfs_quota_us").exists():
            group = v1 / name
            group.mkdir()
            (group / "cpu.cfs_period_us").write_text("100000")
            (group / "cpu.cfs_quota_us").write_text("50000")
        elif "cpu" in (v2 / "cgroup.subtree_control").read_text().split():
            group = v2 / name
            group.mkdir()
            (group / "cpu.max").write_text("50000 100000")
        else:
            pytest.skip("no CPU cgroup controller to make a group in")
    except OSError as err:
        pytest.skip(f"cannot make a CPU cgroup here: {err}")
    yield group
    for _ in range(50):
        try:
            group.rmdir()
            break
        except OSError:  # its last process is still exiting
            time.sleep(0.1)


def test_a_run_under_a_real_cpu_quota_reports_it(tmp_path, half_core_cgroup):
    def join() -> None:
        (half_core_cgroup / "cgroup.procs").write_text(str(os.getpid()))

    proc = subprocess.run(
        [sys.executable, "-m", "sseload", "run", "-u", "4", "-r", "4", "-t", "3s", "--no-report",
         "--results-dir", str(tmp_path), "--run-id", "q"],
        check=False, capture_output=True, text=True, timeout=120, preexec_fn=join,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    health = json.loads((tmp_path / "q" / "run.json").read_text())["health"]
    assert health["cpu_quota_cores"] == 0.5
    assert 0.0 <= health["cpu_throttled_percent"] <= 100.0
    assert "of a 0.5-core quota (throttled in" in proc.stdout
