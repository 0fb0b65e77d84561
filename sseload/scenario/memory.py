"""Whether a load's users fit in this machine's memory, estimated before anything starts.

A user that streams keeps its greenlet and stack, its connection and socket buffers, the SSE
parser's unfinished event, and its streams' records until the recorder writes their batch. Past
the memory the machine has, users are spawned for minutes, no stream ends and the kernel's OOM
killer ends the run: ``sseload run`` refuses such a load up front, with the estimate and what to
do instead (docs/usage.md).
"""

from __future__ import annotations

from pathlib import Path

from sseload.scenario.model import Load

#: What one user costs, as an upper estimate: its share of the Locust process (the greenlet, the
#: connection, the parser, records waiting for their batch) and its socket's kernel buffers.
USER_BYTES = 32 << 10
MEMINFO = Path("/proc/meminfo")


def peak_users(load: Load) -> int:
    """The most users the [load] table ever asks for at once (a shape's highest point)."""
    most = max(load.users, load.start_users) if load.shape in ("ramp", "step") else load.users
    return most + (load.spike_users if load.shape == "spike" else 0)


def available_bytes(meminfo: Path = MEMINFO) -> int | None:
    """The memory the kernel can give new work without swapping (``MemAvailable``); None where unknown."""
    try:
        for line in meminfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "MemAvailable":
                return int(value.split()[0]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def too_many(users: int, said: str, available: int | None) -> str | None:
    """Why ``users`` do not fit in ``available`` bytes, as a sentence that starts with how they were
    asked for (``said``: ``-u/--users is 1000000``); None when they fit, or nothing is known."""
    needed = users * USER_BYTES
    if available is None or needed <= available:
        return None
    fits = available // USER_BYTES
    return (f"{said}: those users need about {_gib(needed)} of memory ({USER_BYTES >> 10} KiB each, an estimate), "
            f"and this machine has {_gib(available)} available; give fewer users (about {fits:,} fit here, "
            f"e.g. -u {max(1, fits // 2)}), or spread them over workers on more machines (docs/workers.md)")
