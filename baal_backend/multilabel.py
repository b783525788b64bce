"""Multi-label classification (`<Choices choice="multiple">`): a sigmoid MC-Dropout head, per-label
thresholds, out-of-fold quality and the acquisition that picks the next task.

* The learner is head mode's: the frozen encoder's embeddings under an `MCHead` with one output
  per label, trained with binary cross-entropy; the MC-Dropout draws run on the head only
  (`model.mc_proba(..., sigmoid=True)`): probabilities [n, labels, draws], each label on its own.
* Skewed labels: a rare label's positives are up-weighted in the loss (`pos_weight`, the square
  root of its negatives-to-positives ratio, capped; `BALANCES`), so the head does not learn to
  say "no" to it everywhere. That is one half of the guard against the collapse baal users saw
  (a label's F1 falling to 0 between two rounds, baal issue #175); the other half is the
  thresholds.
* What a task is pre-filled with: every label whose mean probability reaches its own threshold,
  fitted on out-of-fold probabilities: the label's best-F1 threshold shrunk towards the one best
  for all labels together, in proportion to its positives (`SHRINK_POSITIVES`), so a label with a
  handful of positives does not get a threshold fitted to them. Not a fixed 0.5: a head that saw
  a handful of a label's positives rarely gives a new one 0.5. When no label reaches its
  threshold and every training text had a label, the most probable label is taken: a
  multiple-choice annotation with nothing chosen is no answer in Label Studio, and predicting
  none for such data is wrong every time. (Measured: `benchmarks/multilabel_sim.py`.)
* Quality, as `quality` measures single-label versions (the same plan: a held-out slice of tasks
  or k folds, by task): micro- and macro-F1 and the predicted label cardinality, the thresholds
  of each fold fitted on the other folds' out-of-fold probabilities.
* Acquisition: `informativeness` in [0, 1], higher = label next, and `prediction_scores` in the
  orientation of `acquisition.prediction_scores` (`rank`: 1 - informativeness, the LOWEST score
  is the task to label next; `uncertainty`: the raw value, highest first). The default,
  `cardinality`, serves first the texts whose expected number of labels is farthest from the
  labeled texts' mean (`DEFAULT_HEURISTIC` says what it was measured against); a version keeps
  that mean (`MultiLabelClassifier.cardinality`), so its scores need nothing but the version.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from sklearn.metrics import f1_score

from . import quality
from .acquisition import power_keys, power_rank
from .encoder import Encoder
from .model import HEAD_WEIGHTS, META_FILE, MCHead, mc_proba
from .training import OOF_FOLDS, TrainConfig, fit_head_loop

KIND = "multilabel-head"
#: Candidate thresholds; the fitted one is the middle of the best F1's plateau.
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.025), 3)
DEFAULT_THRESHOLD = 0.5  # before any out-of-fold probability (fewer than quality.MIN_TASKS tasks)
#: A label's own best threshold weighs as much as the shared one once it has this many positives
#: (a probe on the constructed CLINC150 set, 100 / 300 / 1,000 random labels, 3 seeds: shrinking
#: by 30 was as good as or better than the label's own threshold from 3, 10 or 20 positives on,
#: and than the shared one alone; the label's own from 3 positives was the worst at 300).
SHRINK_POSITIVES = 30
#: How the loss weighs a label's positives: 1 (none), sqrt(negatives / positives) or the ratio,
#: capped at `POS_WEIGHT_CAP`.
BALANCES = ("none", "sqrt", "ratio")
DEFAULT_BALANCE = "sqrt"
POS_WEIGHT_CAP = 10.0
HEURISTICS = ("bald", "entropy", "margin", "cvirs", "cardinality", "random", "power_bald", "power_margin")
#: Measured (`benchmarks/multilabel_sim.py`, constructed CLINC150 set, 20 to 300 labels, 3
#: repeats): AULC macro-F1 0.513 against random's 0.468 (micro-F1 0.612 vs 0.605), the best
#: macro-F1 of all; `margin` had the best micro-F1 (0.624; macro 0.486); mean per-label BALD,
#: entropy and CVIRS were below random.
DEFAULT_HEURISTIC = "cardinality"
_EPS = 1e-12


def label_matrix(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """Label sets -> a 0/1 matrix [n, len(labels)] (float32) in `labels`' order."""
    index = {label: i for i, label in enumerate(labels)}
    y = np.zeros((len(label_sets), len(labels)), dtype=np.float32)
    for row, chosen in enumerate(label_sets):
        unknown = [c for c in chosen if c not in index]
        if unknown:
            raise ValueError(f"labels {unknown} are not among the choices")
        y[row, [index[c] for c in chosen]] = 1.0
    return y


def pos_weights(y: np.ndarray, balance: str = DEFAULT_BALANCE) -> np.ndarray:
    """Each label's weight of a positive in the loss (`BALANCES`); 1 for a label without one."""
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {', '.join(BALANCES)}")
    pos = y.sum(0)
    ratio = np.clip(np.where(pos > 0, (len(y) - pos) / np.maximum(pos, 1), 1.0), 1.0, POS_WEIGHT_CAP)
    return {"none": np.ones_like(ratio), "sqrt": np.sqrt(ratio), "ratio": ratio}[balance].astype(np.float32)


def train_sigmoid_head(emb: np.ndarray, y: np.ndarray, cfg: TrainConfig, balance: str = DEFAULT_BALANCE) -> MCHead:
    """A fresh MC-Dropout head with one sigmoid output per label, trained with binary cross-entropy
    as `training.train_mc_head` trains a softmax head (its seed, steps and `fit_stats_`), but each
    epoch in batches of equal size: 260 labels in batches of 128 left a batch of 4, whose 167 full
    steps cost the constructed CLINC150 set 0.025 micro-F1 (a probe, 4 random label sets: 0.680 -> 0.705)."""
    started = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    head = MCHead(emb.shape[1], y.shape[1], generator=gen)
    x = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
    t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    weight = torch.from_numpy(pos_weights(y, balance))
    return fit_head_loop(head, len(x), cfg, gen, started, lambda idx, out: torch.nn.functional.
                         binary_cross_entropy_with_logits(out, t[idx], pos_weight=weight),
                         lambda idx: head(x[idx], generator=gen), equal_batches=True)


def _f1_by_threshold(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """F1 of `p >= t` against `y` (flat arrays) for every t in `THRESHOLDS`."""
    pred = p[:, None] >= THRESHOLDS[None, :]
    truth = y[:, None] > 0
    tp = (pred & truth).sum(0)
    return 2 * tp / np.maximum(pred.sum(0) + truth.sum(), 1)


def _best_threshold(p: np.ndarray, y: np.ndarray) -> float:
    f1 = _f1_by_threshold(p, y)
    best = np.flatnonzero(f1 >= f1.max() - 1e-9)
    return float(THRESHOLDS[best[len(best) // 2]])


def fit_thresholds(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-label thresholds [labels] from out-of-fold mean probabilities [n, labels] and the labels;
    NaN marks a probability that says nothing (its fold's head never saw a positive of the label)."""
    known = ~np.isnan(probs)
    if (y * known).sum() == 0:
        return np.full(y.shape[1], DEFAULT_THRESHOLD, dtype=np.float32)
    shared = _best_threshold(probs[known], y[known])
    out = np.full(y.shape[1], shared, dtype=np.float32)
    for label in range(y.shape[1]):
        rows = known[:, label]
        positives = float(y[rows, label].sum())
        if positives:
            own = _best_threshold(probs[rows, label], y[rows, label])
            out[label] = (positives * own + SHRINK_POSITIVES * shared) / (positives + SHRINK_POSITIVES)
    return out


def decide(mean_probs: np.ndarray, thresholds: np.ndarray, at_least_one: bool = True) -> np.ndarray:
    """The labels to pre-fill [n, labels] (bool): each at or above its threshold; with
    `at_least_one`, a text with none gets its most probable label."""
    pred = mean_probs >= thresholds[None, :]
    if at_least_one and len(pred):
        empty = ~pred.any(1)
        pred[np.flatnonzero(empty), mean_probs[empty].argmax(1)] = True
    return pred


def scores(y: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """Micro-F1, macro-F1 (over the labels with a positive in `y`), exact-match accuracy and the
    label cardinality (mean labels per text) predicted and true."""
    y, pred = y > 0, pred > 0
    present = np.flatnonzero(y.sum(0) > 0)
    return {
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=present, zero_division=0)) if len(present) else 0.0,
        "exact_match": float((y == pred).all(1).mean()),
        "cardinality": float(pred.sum(1).mean()),
        "true_cardinality": float(y.sum(1).mean()),
        "n_eval": int(len(y)),
    }


def stratification_key(y: np.ndarray) -> np.ndarray:
    """One class per row for `quality`'s stratified splits: its rarest label, so each fold gets its
    share of every rare label (whole label sets would not do: almost every set is unique); -1 for none."""
    counts = np.where(y > 0, y.sum(0)[None, :], np.inf)
    return np.where(y.any(1), counts.argmin(1), -1)


class MultiLabelClassifier:
    """Frozen encoder embeddings -> sigmoid MC-Dropout head -> labels above their thresholds."""

    kind = KIND

    def __init__(self, encoder: Encoder, head: MCHead, labels: Sequence[str], thresholds: Sequence[float],
                 at_least_one: bool = True, cardinality: float = 1.0):
        """`cardinality`: the training labels' mean labels per text (the `cardinality` heuristic's target)."""
        self.encoder = encoder
        self.head = head.eval()
        self.labels = tuple(labels)
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.at_least_one = bool(at_least_one)
        self.cardinality = float(cardinality)
        if self.thresholds.shape != (len(self.labels),):
            raise ValueError(f"{len(self.labels)} labels but {self.thresholds.shape} thresholds")

    def predict_proba(self, texts: Sequence[str], draws: int) -> np.ndarray:
        """Per-label probabilities [n, labels, draws] (a row does not sum to 1)."""
        return self.proba_from_embeddings(self.encoder.embed(texts), draws)

    def proba_from_embeddings(self, emb: np.ndarray, draws: int) -> np.ndarray:
        return mc_proba(self.head, emb, draws, sigmoid=True)

    def choices(self, probs: np.ndarray) -> List[Tuple[str, ...]]:
        """The labels to pre-fill each text with, from its MC probabilities [n, labels, draws]."""
        pred = decide(probs.mean(-1), self.thresholds, self.at_least_one)
        return [tuple(self.labels[j] for j in np.flatnonzero(row)) for row in pred]

    def prediction_scores(self, probs: np.ndarray, heuristic: str = "", score_mode: str = "rank",
                          rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """`prediction_scores` under this version's thresholds and label cardinality
        (`DEFAULT_HEURISTIC` unless named; `cvirs` needs the labeled matrix: call the function)."""
        return prediction_scores(probs, heuristic or DEFAULT_HEURISTIC, self.thresholds, score_mode, rng=rng,
                                 cardinality=self.cardinality)

    def save(self, path: Path) -> None:
        torch.save(self.head.state_dict(), path / HEAD_WEIGHTS)
        meta = {"kind": self.kind, "labels": list(self.labels), "encoder": self.encoder.name_or_path,
                "thresholds": [round(float(t), 6) for t in self.thresholds], "at_least_one": self.at_least_one,
                "cardinality": self.cardinality}
        (path / META_FILE).write_text(json.dumps(meta))

    @classmethod
    def from_state(cls, encoder: Encoder, state: Dict[str, Any], labels: Sequence[str], thresholds: Sequence[float],
                   at_least_one: bool = True, cardinality: float = 1.0) -> "MultiLabelClassifier":
        """From a head's `state_dict` (tensors or NumPy arrays)."""
        head = MCHead(encoder.dim, len(labels))
        head.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        return cls(encoder, head, labels, thresholds, at_least_one, cardinality)

    @classmethod
    def load(cls, path: Path, encoder: Encoder) -> "MultiLabelClassifier":
        meta = json.loads((Path(path) / META_FILE).read_text())
        if meta.get("kind") != KIND:
            raise ValueError(f"{path} holds a {meta.get('kind')!r} classifier, not {KIND!r}")
        state = torch.load(Path(path) / HEAD_WEIGHTS, weights_only=True)
        return cls.from_state(encoder, state, meta["labels"], meta["thresholds"], meta["at_least_one"], meta["cardinality"])


@dataclass
class MultiLabelFit:
    """What `fit_multilabel` returns (NumPy only, like `training.HeadFit`)."""

    state: Dict[str, np.ndarray]
    thresholds: np.ndarray
    at_least_one: bool
    cardinality: float  # the labels' mean labels per text
    metrics: Dict[str, object]
    out_of_fold: Optional[np.ndarray]  # [labels rows, labels]: mean probabilities from heads that never saw the row's task

    def classifier(self, encoder: Encoder, labels: Sequence[str]) -> MultiLabelClassifier:
        return MultiLabelClassifier.from_state(encoder, self.state, labels, self.thresholds, self.at_least_one,
                                               self.cardinality)


def fit_multilabel(emb: np.ndarray, y: np.ndarray, groups: Sequence[int], cfg: TrainConfig,
                   balance: str = DEFAULT_BALANCE) -> MultiLabelFit:
    """A version's head, thresholds and quality. Out-of-fold probabilities come from k heads each
    without a fold of tasks (the quality plan's folds, or `OOF_FOLDS` stratified group folds when
    the plan holds out a slice or measures nothing); the thresholds are fitted on them. Quality
    follows `quality.plan`: with folds, each fold's texts are decided by thresholds fitted on the
    other folds; with a held-out slice, a probe trained without it, under thresholds fitted on the
    rest's out-of-fold probabilities. Then the head on every label. Fewer than `quality.MIN_TASKS`
    tasks: no folds, `DEFAULT_THRESHOLD`. A fold's probabilities of a label its head never saw a
    positive of say nothing about where that label's threshold lies, and are left out of the fit."""
    y = np.asarray(y, dtype=np.float32)
    groups = np.asarray(groups)
    key = stratification_key(y)
    plan = quality.plan(key, groups, cfg.eval_fraction, cfg.seed)
    n_tasks = len(np.unique(groups))
    at_least_one = bool(len(y) == 0 or y.sum(1).min() >= 1)

    def proba(train: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return mc_proba(train_sigmoid_head(emb[train], y[train], cfg, balance), emb[rows], cfg.num_draws,
                        sigmoid=True).mean(-1)

    folds: List[quality.Split] = []
    if plan.method.endswith("fold cv"):
        folds = plan.splits
    elif n_tasks >= quality.MIN_TASKS:
        folds = quality._folds(key, groups, min(OOF_FOLDS, n_tasks), cfg.seed)
    oof = np.full(y.shape, np.nan, dtype=np.float32)
    seen = np.zeros(y.shape, dtype=bool)  # the fold's head saw a positive of the label
    for train, test in folds:
        oof[test] = proba(train, test)
        seen[test] = y[train].any(0)[None, :]
    oof_ok = bool(folds) and not np.isnan(oof).any()
    informative = np.where(seen, oof, np.nan)
    thresholds = fit_thresholds(informative, y) if oof_ok else np.full(y.shape[1], DEFAULT_THRESHOLD, dtype=np.float32)

    metrics: Dict[str, object] = {"eval": "none", "reason": plan.reason}
    if plan.method == "holdout":
        (train, test), = plan.splits
        cut = fit_thresholds(informative[train], y[train]) if oof_ok else thresholds
        pred = decide(proba(train, test), cut, bool(y[train].sum(1).min() >= 1))
        metrics = {**scores(y[test], pred), "eval": plan.method}
    elif plan.method.endswith("fold cv") and oof_ok:
        pred = np.zeros(y.shape, dtype=bool)
        for train, test in folds:
            pred[test] = decide(oof[test], fit_thresholds(informative[train], y[train]), bool(y[train].sum(1).min() >= 1))
        metrics = {**scores(y, pred), "eval": plan.method}
    head = train_sigmoid_head(emb, y, cfg, balance)
    metrics.update(fit=head.fit_stats_, balance=balance, thresholds_from="out-of-fold" if oof_ok else "default")
    state = {k: v.numpy() for k, v in head.state_dict().items()}
    cardinality = float(y.sum(1).mean()) if len(y) else 1.0
    return MultiLabelFit(state, thresholds, at_least_one, cardinality, metrics, oof if oof_ok else None)


# --- acquisition -----------------------------------------------------------------------------


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
