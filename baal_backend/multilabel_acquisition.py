"""Which task a multi-label question (`multilabel`) asks about next: `informativeness` in [0, 1],
higher = label next, and `prediction_scores` in the orientation of `acquisition.prediction_scores`
(`rank`: 1 - informativeness, the LOWEST score is the task to label next; `uncertainty`: the raw
value, highest first).

The default, `cardinality`, serves first the texts whose expected number of labels is farthest
from the labeled texts' mean (`DEFAULT_HEURISTIC` says what it was measured against); a version
keeps that mean (`MultiLabelClassifier.cardinality`), so its scores need nothing but the version
(`version_scores`). Apart from `multilabel` (this module reads its thresholds and decision rule,
never the reverse): the model line does not depend on how tasks are picked.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .acquisition import power_keys, power_rank
from .multilabel import MultiLabelClassifier, decide

HEURISTICS = ("bald", "entropy", "margin", "cvirs", "cardinality", "random", "power_bald", "power_margin")
#: Measured (`benchmarks/multilabel_sim.py`, constructed CLINC150 set, 20 to 300 labels, 3
#: repeats): AULC macro-F1 0.513 against random's 0.468 (micro-F1 0.612 vs 0.605), the best
#: macro-F1 of all; `margin` had the best micro-F1 (0.624; macro 0.486); mean per-label BALD,
#: entropy and CVIRS were below random. Those heads had no label-name prior; with it (3 repeats):
#: macro-F1 0.655 against random's 0.621, micro-F1 0.710 vs 0.714.
DEFAULT_HEURISTIC = "cardinality"
_EPS = 1e-12


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)  # in float32, 1 - 1e-12 is 1: log(0)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def label_bald(probs: np.ndarray) -> np.ndarray:
    """Each label's BALD [n, labels] in nats: the mutual information between its 0/1 outcome and
    the dropout mask, H(mean p) - mean H(p), at most log 2."""
    return np.clip(_binary_entropy(probs.mean(-1)) - _binary_entropy(probs).mean(-1), 0.0, None)


def _threshold_margin(mean: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """|p - t| over the largest it can be, max(t, 1 - t): 0 at the threshold, 1 at certainty."""
    return np.abs(mean - thresholds[None, :]) / np.maximum(thresholds, 1 - thresholds)[None, :]


def _vector_entropy(ones: np.ndarray, n_labels: int) -> np.ndarray:
    return _binary_entropy(ones / n_labels)


def category_vector_inconsistency(pred: np.ndarray, labeled: np.ndarray) -> np.ndarray:
    """CVIRS's inconsistency [n] (Reyes et al. 2018): the mean distance of each predicted label
    vector to the labeled ones, 1 for vectors that share no position, else the normalised entropy
    distance (2 H(a, b) - H(a) - H(b)) / H(a, b) of the 2 x 2 contingency table over the labels."""
    if len(labeled) == 0:
        return np.ones(len(pred))
    n_labels = pred.shape[1]
    rows, weight = np.unique(labeled > 0, axis=0, return_counts=True)
    p, r = pred.astype(np.float64), rows.astype(np.float64)
    a = p @ r.T
    b = (1 - p) @ r.T
    c = p @ (1 - r).T
    d = n_labels - a - b - c
    cells = np.stack([a, b, c, d]) / n_labels
    joint = -(cells * np.log(np.clip(cells, _EPS, None))).sum(0)
    h_pred = _vector_entropy(p.sum(1), n_labels)[:, None]
    h_rows = _vector_entropy(r.sum(1), n_labels)[None, :]
    dist = np.where(joint > _EPS, (2 * joint - h_pred - h_rows) / np.maximum(joint, _EPS), 0.0)
    dist = np.where(b + c >= n_labels, 1.0, np.clip(dist, 0.0, 1.0))
    return (dist * weight[None, :]).sum(1) / weight.sum()


def informativeness(probs: np.ndarray, heuristic: str, thresholds: np.ndarray, labeled: Optional[np.ndarray] = None,
                    rng: Optional[np.random.Generator] = None, cardinality: Optional[float] = None) -> np.ndarray:
    """Per-text informativeness [n], higher = label this first, in [0, 1] (`power_*`: Gumbel-
    perturbed log keys, as in `acquisition`).

    `bald`: the mean of the labels' BALD over log 2; `entropy`: the mean binary entropy of the
    labels' mean probabilities over log 2; `margin`: 1 - the smallest `_threshold_margin` (the
    label nearest its threshold); `cardinality`: how far the expected number of labels (the sum
    of the mean probabilities) is from the labeled texts' mean (Li & Guo 2013, on probabilities
    rather than counts, so texts do not tie), over the largest it can be; `cvirs` (Reyes et al.
    2018): the labels' margin ranks, aggregated (Borda) over the labels, times
    `category_vector_inconsistency`. `cvirs` needs the `labeled` matrix, and its ranks are relative
    to the texts scored together (scores of two requests do not compare); `cardinality` needs
    the labeled texts' mean `cardinality` (or the `labeled` matrix).
    """
    if probs.ndim != 3:
        raise ValueError(f"probabilities must be [n, labels, draws], got shape {probs.shape}")
    n, n_labels, _ = probs.shape
    rng = rng or np.random.default_rng()
    if n == 0:
        return np.zeros(0)
    if heuristic.startswith("power_"):
        base = informativeness(probs, heuristic[len("power_"):], thresholds, labeled, rng, cardinality)
        return power_keys(base, rng)
    if heuristic == "random":
        return rng.random(n)
    mean = probs.mean(-1)
    if heuristic == "bald":
        return np.clip(label_bald(probs).mean(1) / np.log(2), 0.0, 1.0)
    if heuristic == "entropy":
        return np.clip(_binary_entropy(mean).mean(1) / np.log(2), 0.0, 1.0)
    if heuristic == "margin":
        return np.clip(1.0 - _threshold_margin(mean, thresholds).min(1), 0.0, 1.0)
    no_labels = labeled is None or len(labeled) == 0
    if heuristic == "cardinality":
        if cardinality is None and no_labels:
            raise ValueError("'cardinality' needs the labeled texts' mean cardinality or the labeled label matrix")
        target = float((labeled > 0).sum(1).mean()) if cardinality is None else float(cardinality)
        return np.clip(np.abs(mean.sum(1) - target) / max(target, n_labels - target), 0.0, 1.0)
    if heuristic == "cvirs":
        if no_labels:
            raise ValueError("'cvirs' needs the labeled label matrix")
        ranks = _threshold_margin(mean, thresholds).argsort(0, kind="stable").argsort(0, kind="stable")
        uncertainty = (n - 1 - ranks).sum(1) / (n_labels * max(n - 1, 1))
        pred = decide(mean, thresholds, bool((labeled > 0).any(1).all()))
        return np.clip(uncertainty * category_vector_inconsistency(pred, labeled), 0.0, 1.0)
    raise ValueError(f"unknown multi-label heuristic {heuristic!r}; choose from {', '.join(HEURISTICS)}")


def prediction_scores(probs: np.ndarray, heuristic: str, thresholds: np.ndarray, score_mode: str = "rank",
                      labeled: Optional[np.ndarray] = None, rng: Optional[np.random.Generator] = None,
                      cardinality: Optional[float] = None) -> np.ndarray:
    """The `score` Label Studio stores, oriented as `acquisition.prediction_scores`: `rank` in
    [0, 1], LOWEST = label next; `uncertainty`: highest = label next (`bald` as the SUM of the
    labels' BALD in nats, the others as `informativeness`)."""
    u = informativeness(probs, heuristic, thresholds, labeled, rng, cardinality)
    if score_mode == "uncertainty":
        return label_bald(probs).sum(1) if heuristic == "bald" else u
    return power_rank(u) if heuristic.startswith("power_") else 1.0 - u


def select(probs: np.ndarray, heuristic: str, k: int, thresholds: np.ndarray, labeled: Optional[np.ndarray] = None,
           rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Indices of the `k` texts to label next, most informative first."""
    u = informativeness(probs, heuristic, thresholds, labeled, rng)
    return np.argsort(-u, kind="stable")[: min(k, len(u))]


def version_scores(clf: MultiLabelClassifier, probs: np.ndarray, heuristic: str = "", score_mode: str = "rank",
                   rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """`prediction_scores` under a version's thresholds and label cardinality (`DEFAULT_HEURISTIC`
    unless named; `cvirs` needs the labeled matrix: call `prediction_scores`)."""
    return prediction_scores(probs, heuristic or DEFAULT_HEURISTIC, clf.thresholds, score_mode, rng=rng,
                             cardinality=clf.cardinality)
