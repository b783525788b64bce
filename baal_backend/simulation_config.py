"""What an active-learning simulation replays (`SimulationConfig`), checked when it is made."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List

from .settings import HEURISTICS


COLD_STARTS = ("kmeans", "random", "prior", "kmeans-margin")


@dataclass
class SimulationConfig:
    strategies: List[str] = field(default_factory=lambda: ["random", "bald", "entropy", "margin", "power_bald"])
    seed_size: int = 10
    batch_size: int = 10
    budget: int = 200
    repeats: int = 3
    mode: str = "head"
    model: str = ""
    cold_start: str = "kmeans"
    mc: str = "head"
    num_draws: int = 20
    max_length: int = 128
    seed: int = 0
    prior: bool = True
    flip: float = 0.0  # this fraction of the oracle's labels is wrong (the suspicious-label check)
    clusters: bool = False  # also run each strategy through Label Studio's cluster-aware sampler

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in HEURISTICS]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(HEURISTICS)}")
        if not 0 < self.seed_size <= self.budget or self.batch_size < 1 or self.repeats < 1:
            raise ValueError("need 0 < seed-size <= budget, batch-size >= 1 and repeats >= 1")
        if self.cold_start not in COLD_STARTS:
            raise ValueError(f"cold start must be one of {', '.join(COLD_STARTS)}")
        if self.cold_start in ("prior", "kmeans-margin") and not self.prior:
            raise ValueError(f"cold start {self.cold_start!r} needs the label-name prior (--prior on)")
        if self.mc not in ("head", "full"):
            raise ValueError("mc must be 'head' (the server's path) or 'full' (dropout in the whole network)")
        if not 0 <= self.flip < 1:
            raise ValueError("flip is the fraction of wrong labels, in [0, 1)")
        if self.mc == "full" and self.mode != "head":
            raise ValueError("mc 'full' is implemented for head mode")

    @property
    def budgets(self) -> List[int]:
        steps = math.ceil((self.budget - self.seed_size) / self.batch_size)
        return [min(self.seed_size + i * self.batch_size, self.budget) for i in range(steps + 1)]
