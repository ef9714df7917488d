"""Wallclock budgets (600 s training, 600 s evaluation) measured on the process's own clock.

The clock is injectable so tests can drive a budget past its limit without waiting.
"""

from __future__ import annotations

import time
from typing import Callable

from golf.errors import BudgetExceeded


class WallclockBudget:
    """A named budget of `limit_s` seconds that starts on construction (or `restart()`)."""

    def __init__(self, name: str, limit_s: float, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.limit_s = float(limit_s)
        self.clock = clock
        self.start = clock()

    def restart(self) -> None:
        self.start = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float:
        return self.limit_s - self.elapsed()

    def exceeded(self) -> bool:
        return self.elapsed() > self.limit_s

    def check(self, phase: str = "") -> float:
        """Raise BudgetExceeded when the budget is spent; returns the elapsed seconds otherwise."""
        elapsed = self.elapsed()
        if elapsed > self.limit_s:
            where = f" during {phase}" if phase else ""
            raise BudgetExceeded(
                f"{self.name} budget exceeded{where}: {elapsed:.1f} s > {self.limit_s:.1f} s"
            )
        return elapsed
