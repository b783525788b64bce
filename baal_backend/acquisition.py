"""MC-Dropout probabilities -> how informative each text is -> the score Label Studio sorts by.

Base uncertainties come from baal's heuristics (`baal.active.heuristics`). On top of them:

* every heuristic is turned into an *informativeness* `u`, higher = label this first, in its
  natural units (BALD and entropy in nats, `1 - margin`, `1 - max p`, a uniform draw);
* `u` is normalised by its theoretical maximum (log C for BALD and entropy, 1 - 1/C for least
  confidence) so scores from different requests and model versions compare;
* the `power_*` variants (Kirsch et al. 2022, "Stochastic Batch Acquisition") sample a batch
  with probability proportional to `u`. Sampling without replacement proportional to `u` is the
  same as taking the top-k of `log u + Gumbel noise`, so each text gets its own perturbed key and
  Label Studio's plain sort by score performs the power sampling. baal's `PowerSampling` does the
  same draw with `np.random.choice`, which needs the whole pool at once.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from baal.active.heuristics import BALD, Certainty, Entropy, Margin

_EPS = 1e-12


def power_keys(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A power variant's keys: `log u + Gumbel noise`, so sorting draws a batch with probability
    proportional to `u` (Kirsch et al. 2022)."""
    return np.log(np.clip(base, _EPS, None)) + rng.gumbel(size=len(base))


def power_rank(keys: np.ndarray) -> np.ndarray:
    """Power keys as `rank` scores: a monotone map onto (0, 1), lowest = label next."""
    return 1.0 / (1.0 + np.exp(keys))


def informativeness(probs: np.ndarray, heuristic: str, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Per-text informativeness, higher = more useful to label.

    Parameters
    ----------
    probs : array [n, classes, draws] of MC-Dropout class probabilities.
    heuristic : one of `settings.HEURISTICS`.
    rng : randomness for `random` and the `power_*` variants.

    Returns
    -------
    array [n]: deterministic heuristics lie in [0, 1]; `power_*` give Gumbel-perturbed log keys.
    """
    if probs.ndim != 3:
        raise ValueError(f"probabilities must be [n, classes, draws], got shape {probs.shape}")
    n, n_classes, _ = probs.shape
    rng = rng or np.random.default_rng()
    if n == 0:
        return np.zeros(0)
    if heuristic.startswith("power_"):
        base = informativeness(probs, heuristic[len("power_"):], rng)
        return power_keys(base, rng)
    if heuristic == "random":
        return rng.random(n)
    log_c = np.log(n_classes)
    if heuristic == "bald":
        return np.clip(BALD().get_uncertainties(probs) / log_c, 0.0, 1.0)
    if heuristic == "entropy":
        return np.clip(Entropy().get_uncertainties(probs) / log_c, 0.0, 1.0)
    if heuristic == "margin":
        return np.clip(1.0 - Margin().get_uncertainties(probs), 0.0, 1.0)
    if heuristic == "least_confidence":
        return np.clip((1.0 - Certainty().get_uncertainties(probs)) / (1.0 - 1.0 / n_classes), 0.0, 1.0)
    raise ValueError(f"unknown heuristic {heuristic!r}")


def raw_uncertainty(probs: np.ndarray, heuristic: str, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The heuristic's own value, highest = most informative (the original tutorial's sort).

    BALD and entropy in nats (not divided by log C); the others as `informativeness`.
    """
    u = informativeness(probs, heuristic, rng)
    if heuristic in ("bald", "entropy"):
        u = u * np.log(probs.shape[1])
    return u


def prediction_scores(
    probs: np.ndarray, heuristic: str, score_mode: str, rng: Optional[np.random.Generator] = None
) -> np.ndarray:
    """The `score` Label Studio stores for each prediction.

    `rank` (default): in [0, 1], LOWEST = most informative, so Label Studio's "Uncertainty
    sampling" and an ascending sort by prediction score serve the best task first.
    `uncertainty`: `raw_uncertainty`, HIGHEST = most informative (sort descending).
    """
    if score_mode == "uncertainty":
        return raw_uncertainty(probs, heuristic, rng)
    u = informativeness(probs, heuristic, rng)
    return power_rank(u) if heuristic.startswith("power_") else 1.0 - u


def select(probs: np.ndarray, heuristic: str, k: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Indices of the `k` texts to label next, most informative first."""
    u = informativeness(probs, heuristic, rng)
    k = min(k, len(u))
    return np.argsort(-u, kind="stable")[:k]


def select_spread(probs: np.ndarray, heuristic: str, k: int, clusters: np.ndarray, solved: np.ndarray,
                  rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Label Studio's uncertainty sampler when predictions carry a `cluster`: each next task is
    the most informative one among the clusters where the annotators solved the fewest tasks.
    `clusters`: each candidate's cluster; `solved`: labeled tasks per cluster so far."""
    u = informativeness(probs, heuristic, rng)
    solved = solved.astype(np.int64).copy()
    free = np.ones(len(u), dtype=bool)
    picks = []
    for _ in range(min(k, len(u))):
        fewest = solved[clusters[free]].min()
        candidates = np.flatnonzero(free & (solved[clusters] == fewest))
        best = candidates[np.argmax(u[candidates])]
        picks.append(best)
        free[best] = False
        solved[clusters[best]] += 1
    return np.array(picks, dtype=np.int64)
