"""Mean, sample standard deviation and t-based 95 % confidence interval of a few values.

The interval is ``mean ± t(0.975, n - 1) · std / √n`` (Student's t, scipy): the usual
interval for the mean of ``n`` paired differences, honest about how few units there are.
One value has no spread and no interval.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """``mean`` of ``n`` values, their sample ``std`` and the 95 % interval (None for one value)."""

    mean: float
    std: float | None
    n: int
    ci95: tuple[float, float] | None

    @classmethod
    def of(cls, values: list[float]) -> "Estimate | None":
        """The estimate of ``values``; None when there are none."""
        if not values:
            return None
        mean = statistics.fmean(values)
        if len(values) == 1:
            return cls(mean, None, 1, None)
        std = statistics.stdev(values)
        half = float(stats.t.ppf(0.5 + LEVEL / 2, len(values) - 1)) * std / math.sqrt(len(values))
        return cls(mean, std, len(values), (mean - half, mean + half))

    def numbers(self) -> dict[str, Any]:
        """As plain numbers for ``report.json``: ``mean``, ``std``, ``n``, ``ci95`` ([low, high] or null)."""
        return {"mean": self.mean, "std": self.std, "n": self.n,
                "ci95": list(self.ci95) if self.ci95 is not None else None}

    def half_width(self) -> float:
        """Half the interval's width (0 without one): the error bar a plot draws."""
        return 0.0 if self.ci95 is None else (self.ci95[1] - self.ci95[0]) / 2
