"""Distributions written as text: ``200``, ``"uniform:100:300"``, ``"lognormal:200:0.5"``.

Neutral ground: the scenario's prompt lengths and ``max_tokens`` use them, and so does the
reference target's event timing (sseload.target.config), without either depending on the other.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


class DistError(ValueError):
    """Text that is not a distribution; the message names where it came from and the forms allowed."""


@dataclass(frozen=True)
class Dist:
    """A value drawn at random: fixed, uniform(low, high) or lognormal(median, sigma)."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0

    @classmethod
    def parse(cls, spec: str | int | float, what: str = "delay") -> Dist:
        """``200``, ``"uniform:100:300"``, ``"lognormal:200:0.5"``; ``what`` names the setting in the error."""
        if isinstance(spec, (int, float)):
            return cls("fixed", float(spec))
        parts = str(spec).split(":")
        try:
            if len(parts) == 1:
                return cls("fixed", float(parts[0]))
            if parts[0] in ("uniform", "lognormal") and len(parts) == 3:
                return cls(parts[0], float(parts[1]), float(parts[2]))
        except ValueError:
            pass
        raise DistError(
            f"{what} {spec!r} is not a delay: write milliseconds (200), "
            "'uniform:LOW:HIGH' or 'lognormal:MEDIAN:SIGMA'"
        )

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        return self.a * math.exp(rng.gauss(0.0, self.b))

    def __str__(self) -> str:
        return f"{self.a:g}" if self.kind == "fixed" else f"{self.kind}:{self.a:g}:{self.b:g}"
