"""The open model's arrivals: one schedule per process, each arrival taken by whichever user is free.

A closed model's users start their next stream when the last one ends; an open model's streams
start on a schedule (constant or Poisson at ``rate_per_s``) whatever the service does. Giving each
user its own share of the schedule would make an arrival wait whenever *its* user is busy though
others are idle: coordinated omission made by the harness. So the process keeps one schedule, and
a user that becomes free takes its next arrival in order: an arrival starts late (schedule lag)
only when every user is busy, which is then the service's (or the harness's) saturation.

No arrival is scheduled after the run time: the last streams start inside the load window.
"""

from __future__ import annotations

import random
import time


class Arrivals:
    """Scheduled start times (wall clock, ns) handed out in order, one per ``take``."""

    def __init__(self, arrival: str, rate_per_s: float, run_s: float | None = None,
                 rng: random.Random | None = None) -> None:
        if arrival not in ("constant", "poisson") or rate_per_s <= 0:
            raise ValueError(f"an open model needs arrival constant or poisson and rate_per_s > 0, not {arrival!r}, "
                             f"{rate_per_s!r}")
        self.arrival = arrival
        self.rate_per_s = rate_per_s
        self.run_s = run_s
        self._rng = rng or random.Random()
        self._next_ns = 0
        self._end_ns = 0
        self.taken = 0

    def _gap_ns(self) -> int:
        if self.arrival == "poisson":
            return int(self._rng.expovariate(self.rate_per_s) * 1e9)
        return int(1e9 / self.rate_per_s)

    def take(self, now_ns: int | None = None) -> int | None:
        """The next arrival's scheduled start, or None once the run time is over."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        if self._next_ns == 0:  # the schedule starts with the load: its first arrival one gap in
            self._next_ns = now_ns + self._gap_ns()
            self._end_ns = now_ns + int(self.run_s * 1e9) if self.run_s else 0
        scheduled = self._next_ns
        if self._end_ns and scheduled >= self._end_ns:
            return None
        self._next_ns += self._gap_ns()
        self.taken += 1
        return scheduled


#: The master's message to each worker of a trace replay: its share of the lines and the trace's origin.
TRACE_SHARE = "sseload_trace_share"
#: A trace starts this long after the load does: the users are spawned, and with workers every worker
#: has its share, by then.
TRACE_LEAD_S = 0.5


class TraceArrivals:
    """A trace's schedule in this process: line ``i`` of the trace (in time order) at ``origin_ns +
    times_ms[i] / speed``, for the lines of this process's share (every ``of``-th from ``share``).

    One origin for every process: with workers the master's, sent with each worker's share, so the
    times hold across them; alone, a moment after the load's start (:data:`TRACE_LEAD_S`); else the
    first ``take``. Lines are taken in order by
    whichever user is free, as the open model's arrivals are (:class:`Arrivals`); a line that starts
    late because every user was busy is recorded as schedule lag, never moved. No line is scheduled
    after the run time."""

    def __init__(self, times_ms, speed: float = 1.0, run_s: float | None = None, share: int = 0, of: int = 1,
                 origin_ns: int | None = None) -> None:
        import numpy as np

        if speed <= 0 or not 0 <= share < of:
            raise ValueError(f"a trace needs speed > 0 and 0 <= share < of, not {speed!r}, {share!r}, {of!r}")
        self.lines = np.arange(share, len(times_ms), of)
        self._offsets_ns = (np.asarray(times_ms, dtype=np.float64)[self.lines] * 1e6 / speed).astype(np.int64)
        self.run_s = run_s
        self.origin_ns = origin_ns
        self._next = 0
        self.taken = 0

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, now_ns: int | None = None) -> tuple[int, int] | None:
        """(the next line's scheduled start, wall clock ns; its index in the trace), or None when the
        share is sent or the run time is over."""
        if self.origin_ns is None:
            self.origin_ns = time.time_ns() if now_ns is None else now_ns
        k = self._next
        if k >= len(self.lines):
            return None
        offset = int(self._offsets_ns[k])
        if self.run_s and offset >= self.run_s * 1e9:
            return None
        self._next += 1
        self.taken += 1
        return self.origin_ns + offset, int(self.lines[k])


__all__ = ["TRACE_LEAD_S", "TRACE_SHARE", "Arrivals", "TraceArrivals"]
