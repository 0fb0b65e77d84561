"""The CPU this process may use: its cgroup's CPU quota, and how often that quota stopped it.

A Locust worker in a container (Kubernetes `limits: cpu`, `docker --cpus`) runs under a CFS
quota: past it, every thread of the process, the reader thread included, is stopped until the
next period. Two things follow for the health verdict. "CPU over 90%" must mean 90% of what the
process may use, not of a whole core (a worker capped at half a core never shows more than 50%).
And a throttled period stalls every open stream's reader, so the share of throttled periods is
reported beside it (sseload.record.health lets the reader thread's own lag say whether it mattered).

Reads cgroup v2 (`cpu.max`) and v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`), from the
process's own cgroup up to its mount's root (a quota on a parent, such as a Kubernetes pod's,
limits the children too); the tightest one counts. Where there is none, or the files cannot be
read (not Linux, no cgroup mounted), there is no quota: nothing here ever raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuQuota", "cpu_quota"]


@dataclass(frozen=True)
class CpuQuota:
    """The tightest CPU quota over the process's cgroup and its parents."""

    cores: float  # CPU time per wall time the quota allows (0.5: half a core)
    period_us: int
    cgroup_dir: Path  # where the quota is set: its cpu.stat counts the throttled periods

    def throttled(self) -> tuple[int, int]:
        """(periods, throttled periods) of the quota's cgroup so far; (0, 0) if unreadable."""
        try:
            text = (self.cgroup_dir / "cpu.stat").read_text()
        except OSError:
            return 0, 0
        stat = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                stat[key] = int(value)
        return stat.get("nr_periods", 0), stat.get("nr_throttled", 0)


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, options) of each cgroup mount in /proc/self/mountinfo."""
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((fields[3], fields[4], tail[0], set(tail[2].split(","))))
    return out


def _dirs(proc_cgroup: str, mountinfo: str, sys_root: Path) -> list[tuple[str, Path]]:
    """("v1" or "v2", directory) from the process's CPU cgroup up to its mount's root."""
    out = []
    mounts = _mounts(mountinfo)
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            kind = "v2"
            candidates = [m for m in mounts if m[2] == "cgroup2"]
        elif "cpu" in controllers.split(","):
            kind = "v1"
            candidates = [m for m in mounts if m[2] == "cgroup" and "cpu" in m[3]]
        else:
            continue
        for root, mount_point, _, _ in candidates:
            # the mount shows the hierarchy from `root` down (in a container: its own cgroup)
            rel = path if root == "/" else path[len(root):] if path.startswith(root) else None
            if rel is None:
                continue
            base = sys_root / mount_point.lstrip("/")
            here = base / rel.strip("/") if rel.strip("/") else base
            while True:
                out.append((kind, here))
                if here == base:
                    break
                here = here.parent
            break
    return out


def _quota_at(kind: str, directory: Path) -> tuple[float, int] | None:
    try:
        if kind == "v2":
            quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
            if quota == "max":
                return None
            quota_us, period_us = int(quota), int(period or 100_000)
        else:
            quota_us = int((directory / "cpu.cfs_quota_us").read_text())
            period_us = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota_us <= 0 or period_us <= 0:  # v1 says -1 for none
        return None
    return quota_us / period_us, period_us


def cpu_quota(sys_root: Path = Path("/")) -> CpuQuota | None:
    """This process's tightest CPU quota, or None where it has none (``sys_root``: for tests)."""
    try:
        proc_cgroup = (sys_root / "proc/self/cgroup").read_text()
        mountinfo = (sys_root / "proc/self/mountinfo").read_text()
    except OSError:
        return None
    best = None
    for kind, directory in _dirs(proc_cgroup, mountinfo, sys_root):
        found = _quota_at(kind, directory)
        if found is not None and (best is None or found[0] < best.cores):
            best = CpuQuota(found[0], found[1], directory)
    return best
