"""Distributions written as text: ``200``, ``"uniform:100:300"``, ``"lognormal:200:0.5"``.

Neutral ground: the scenario's prompt lengths and ``max_tokens`` use them, and so does the
reference target's event timing (sseload.target.config), without either depending on the other.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

MAX_SIGMA = 10.0  # a lognormal's largest sigma: past it one draw in a few overflows any range


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
        dist = None
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            dist = cls("fixed", float(spec))
        parts = str(spec).split(":")
        try:
            if dist is None and len(parts) == 1:
                dist = cls("fixed", float(parts[0]))
            elif dist is None and parts[0] in ("uniform", "lognormal") and len(parts) == 3:
                dist = cls(parts[0], float(parts[1]), float(parts[2]))
        except ValueError:
            pass
        if dist is None:
            raise DistError(f"{what} {spec!r} is not a delay: write milliseconds (200), "
                            "'uniform:LOW:HIGH' or 'lognormal:MEDIAN:SIGMA'")
        if not (math.isfinite(dist.a) and math.isfinite(dist.b)):
            raise DistError(f"{what} {spec!r} holds a number that is not finite (NaN or an infinity); give finite "
                            "numbers, e.g. 200, 'uniform:100:300' or 'lognormal:200:0.5'")
        if dist.kind == "lognormal" and not 0 <= dist.b <= MAX_SIGMA:
            raise DistError(f"{what} {spec!r}: a lognormal's sigma must be at least 0 and at most {MAX_SIGMA:g}, "
                            "e.g. 'lognormal:200:0.5'")
        return dist

    def bounds(self) -> tuple[float, ...]:
        """The numbers a range holds it to: the value, the uniform's two ends, or the lognormal's median."""
        return (self.a, self.b) if self.kind == "uniform" else (self.a,)

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        return self.a * math.exp(rng.gauss(0.0, self.b))

    def __str__(self) -> str:
        return f"{self.a:g}" if self.kind == "fixed" else f"{self.kind}:{self.a:g}:{self.b:g}"
