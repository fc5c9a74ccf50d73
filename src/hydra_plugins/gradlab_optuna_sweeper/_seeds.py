"""A trial over several seeds: its configuration run once per seed, its value one
statistic of theirs (per objective): the mean, or the 95% t-interval's bound on the
losing side (`lower_bound`: the lower bound of an objective maximized, the upper bound of
one minimized), so a configuration that won by one lucky seed ranks below one that wins
on every seed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

STATISTICS = ("mean", "lower_bound")
LEVEL = 0.95


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # the sample's (n - 1); 0 for one seed
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        n = len(values)
        mean = math.fsum(values) / n
        if n < 2:
            return cls(n, mean, 0.0, mean, mean)
        # scipy only with several seeds: a search of one seed a trial never loads it.
        from scipy import stats

        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n)
        return cls(n, mean, std, mean - half, mean + half)

    def value(self, statistic: str, direction: str) -> float:
        """What the study is told: the mean, or the interval's pessimistic end."""
        if statistic == "mean":
            return self.mean
        return self.low if direction == "maximize" else self.high

    def attrs(self, objective: str) -> dict[str, object]:
        """The trial's user attributes for this objective."""
        return {
            f"{objective}.mean": self.mean,
            f"{objective}.std": self.std,
            f"{objective}.interval": [self.low, self.high],
        }


def seeds(base: int, count: int) -> list[int]:
    return [base + i for i in range(count)]
