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


__all__ = ["Arrivals"]
