"""Multi-label classification (`<Choices choice="multiple">`): a sigmoid MC-Dropout head, per-label
thresholds and out-of-fold quality.

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
* The label names' prior (`prior.MultiLabelPrior`, with `LABEL_PRIOR`): each label's logit
  starts at `scale * cosine(text, name) + bias`, a fixed offset under the head, and each name is
  one more training text of its label, so a version trained on a few labels already knows what
  the names mean (`benchmarks/multilabel_sim.py`, cardinality, 3 repeats, without -> with it:
  micro-F1 at 20 labels 0.441 -> 0.577, at 60 0.502 -> 0.643; macro-F1 0.257 -> 0.446 and
  0.344 -> 0.557; AULC over 20-300 labels micro 0.611 -> 0.710, macro 0.514 -> 0.655).
* Quality, as `quality` measures single-label versions (the same plan: a held-out slice of tasks
  or k folds, by task): micro- and macro-F1, each label's F1 and the label cardinality (true and
  predicted), the thresholds of each fold fitted on the other folds' out-of-fold probabilities.
* Which task to ask about next is `multilabel_acquisition`'s (it reads this module's thresholds
  and decision rule; this module never reads it). A version keeps its training labels' mean label
  cardinality (`MultiLabelClassifier.cardinality`), the default heuristic's target.
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
from .encoder import Encoder
from .model import HEAD_WEIGHTS, META_FILE, PRIOR_FILE, MCHead, mc_proba
from .prior import MultiLabelPrior, prior_offset
from .training import OOF_FOLDS, TrainConfig, fit_head_loop

KIND = "multilabel-head"
#: The kind of a head trained on top of the label-name prior: code from before the prior refuses it
#: rather than serve the head alone.
KIND_ON_PRIOR = "multilabel-head+prior"
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


def train_sigmoid_head(emb: np.ndarray, y: np.ndarray, cfg: TrainConfig, balance: str = DEFAULT_BALANCE,
                       prior: Optional[MultiLabelPrior] = None) -> MCHead:
    """A fresh MC-Dropout head with one sigmoid output per label, trained with binary cross-entropy
    as `training.train_mc_head` trains a softmax head (its seed, steps and `fit_stats_`), but each
    epoch in batches of equal size: 260 labels in batches of 128 left a batch of 4, whose 167 full
    steps cost the constructed CLINC150 set 0.025 micro-F1 (a probe, 4 random label sets: 0.680 -> 0.705).
    With a `prior`, the head learns what to add to the prior's logits (a fixed offset)."""
    started = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    head = MCHead(emb.shape[1], y.shape[1], generator=gen)
    if prior is not None and prior.scale > 0:
        # each label's name is one more text with that label alone, so a label with no positive
        # yet is not trained away (20 random CLINC150 labels, 2 seeds: micro-F1 0.40 -> 0.59)
        named = prior.named()
        emb = np.concatenate([emb, prior.prototypes[named]])
        y = np.concatenate([y, np.eye(y.shape[1], dtype=np.float32)[named]])
    x = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
    t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    weight = torch.from_numpy(pos_weights(y, balance))
    offset = prior_offset(prior, emb)
    base = torch.from_numpy(offset) if offset is not None else torch.zeros(t.shape)
    return fit_head_loop(head, len(x), cfg, gen, started, lambda idx, out: torch.nn.functional.
                         binary_cross_entropy_with_logits(out + base[idx], t[idx], pos_weight=weight),
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


def scores(y: np.ndarray, pred: np.ndarray, labels: Sequence[str]) -> Dict[str, object]:
    """Micro-F1, macro-F1 (over the labels with a positive in `y`), exact-match accuracy, each
    label's F1 by name (`per_label_f1`; a label neither true nor predicted in any text has none
    and is left out) and the label cardinality, the mean labels per text, true (`labels`) and
    predicted: what a version records for its report page."""
    if len(labels) != y.shape[1]:
        raise ValueError(f"{len(labels)} label names for {y.shape[1]} labels")
    y, pred = y > 0, pred > 0
    present = np.flatnonzero(y.sum(0) > 0)
    per_label = f1_score(y, pred, average=None, zero_division=0)
    seen = y.any(0) | pred.any(0)
    return {
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=present, zero_division=0)) if len(present) else 0.0,
        "exact_match": float((y == pred).all(1).mean()),
        "per_label_f1": {label: round(float(f1), 4) for label, f1, on in zip(labels, per_label, seen) if on},
        "cardinality": {"labels": round(float(y.sum(1).mean()), 4), "predicted": round(float(pred.sum(1).mean()), 4)},
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
                 at_least_one: bool = True, cardinality: float = 1.0, prior: Optional[MultiLabelPrior] = None):
        """`cardinality`: the training labels' mean labels per text (the `cardinality` heuristic's
        target); `prior`: the label-name prior the head was trained on top of."""
        self.encoder = encoder
        self.head = head.eval()
        self.labels = tuple(labels)
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.at_least_one = bool(at_least_one)
        self.cardinality = float(cardinality)
        self.prior = prior
        if self.thresholds.shape != (len(self.labels),):
            raise ValueError(f"{len(self.labels)} labels but {self.thresholds.shape} thresholds")

    def predict_proba(self, texts: Sequence[str], draws: int) -> np.ndarray:
        """Per-label probabilities [n, labels, draws] (a row does not sum to 1)."""
        return self.proba_from_embeddings(self.encoder.embed(texts), draws)

    def proba_from_embeddings(self, emb: np.ndarray, draws: int) -> np.ndarray:
        return mc_proba(self.head, emb, draws, self.prior, sigmoid=True)

    def choices(self, probs: np.ndarray) -> List[Tuple[str, ...]]:
        """The labels to pre-fill each text with, from its MC probabilities [n, labels, draws]."""
        pred = decide(probs.mean(-1), self.thresholds, self.at_least_one)
        return [tuple(self.labels[j] for j in np.flatnonzero(row)) for row in pred]

    def save(self, path: Path) -> None:
        torch.save(self.head.state_dict(), path / HEAD_WEIGHTS)
        meta = {"kind": self.kind, "labels": list(self.labels), "encoder": self.encoder.name_or_path,
                "thresholds": [round(float(t), 6) for t in self.thresholds], "at_least_one": self.at_least_one,
                "cardinality": self.cardinality}
        if self.prior is not None:
            np.save(path / PRIOR_FILE, self.prior.prototypes)
            bias = np.zeros(len(self.labels)) if self.prior.bias is None else self.prior.bias
            meta.update(prior_scale=self.prior.scale, prior_bias=[float(b) for b in bias])
            if self.kind == KIND:
                meta["kind"] = KIND_ON_PRIOR
        (path / META_FILE).write_text(json.dumps(meta))

    @classmethod
    def from_state(cls, encoder: Encoder, state: Dict[str, Any], labels: Sequence[str], thresholds: Sequence[float],
                   at_least_one: bool = True, cardinality: float = 1.0, prior: Optional[MultiLabelPrior] = None
                   ) -> "MultiLabelClassifier":
        """From a head's `state_dict` (tensors or NumPy arrays)."""
        head = MCHead(encoder.dim, len(labels))
        head.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        return cls(encoder, head, labels, thresholds, at_least_one, cardinality, prior)

    @classmethod
    def load(cls, path: Path, encoder: Encoder) -> "MultiLabelClassifier":
        kind = json.loads((Path(path) / META_FILE).read_text()).get("kind")
        if kind not in (KIND, KIND_ON_PRIOR):
            raise ValueError(f"{path} holds a {kind!r} classifier, not {KIND!r}")
        return cls.read(path, encoder)

    @classmethod
    def read(cls, path: Path, encoder: Encoder) -> "MultiLabelClassifier":
        """What `save` wrote, whatever its kind (a subclass checks its own)."""
        meta = json.loads((Path(path) / META_FILE).read_text())
        prior = None
        if meta.get("prior_scale") is not None:
            if not (Path(path) / PRIOR_FILE).exists():  # not FileNotFoundError: that means "the version vanished"
                raise ValueError(f"{PRIOR_FILE} is missing")
            prior = MultiLabelPrior(np.load(Path(path) / PRIOR_FILE), meta["prior_scale"],
                                    np.asarray(meta["prior_bias"], dtype=np.float32))
        state = torch.load(Path(path) / HEAD_WEIGHTS, weights_only=True)
        return cls.from_state(encoder, state, meta["labels"], meta["thresholds"], meta["at_least_one"], meta["cardinality"],
                              prior)


@dataclass
class MultiLabelFit:
    """What `fit_multilabel` returns (NumPy only, like `training.HeadFit`)."""

    state: Dict[str, np.ndarray]
    thresholds: np.ndarray
    at_least_one: bool
    cardinality: float  # the labels' mean labels per text
    metrics: Dict[str, object]
    out_of_fold: Optional[np.ndarray]  # [labels rows, labels]: mean probabilities from heads that never saw the row's task
    prior: Optional[MultiLabelPrior] = None  # the label-name prior the head learned on top of
    #: `out_of_fold` with NaN where the fold's head never saw a positive of the label: there its
    #: probability says nothing about the row (the report's suspicious labels skip those cells)
    informative: Optional[np.ndarray] = None

    def classifier(self, encoder: Encoder, labels: Sequence[str]) -> MultiLabelClassifier:
        return MultiLabelClassifier.from_state(encoder, self.state, labels, self.thresholds, self.at_least_one,
                                               self.cardinality, self.prior)


def fit_multilabel(emb: np.ndarray, y: np.ndarray, groups: Sequence[int], cfg: TrainConfig, labels: Sequence[str],
                   prototypes: Optional[np.ndarray] = None, balance: str = DEFAULT_BALANCE) -> MultiLabelFit:
    """A version's head, thresholds and quality. Out-of-fold probabilities come from k heads each
    without a fold of tasks (the quality plan's folds, or `OOF_FOLDS` stratified group folds when
    the plan holds out a slice or measures nothing); the thresholds are fitted on them. Quality
    follows `quality.plan`: with folds, each fold's texts are decided by thresholds fitted on the
    other folds; with a held-out slice, a probe trained without it, under thresholds fitted on the
    rest's out-of-fold probabilities. Then the head on every label. Fewer than `quality.MIN_TASKS`
    tasks: no folds, `DEFAULT_THRESHOLD`. A fold's probabilities of a label its head never saw a
    positive of say nothing about where that label's threshold lies, and are left out of the fit
    (`MultiLabelFit.informative` marks them NaN).
    With the label names' `prototypes` (`prior.LabelPrior`'s), each head, probes too, learns on top
    of a `MultiLabelPrior` fitted to its own training labels. `labels` name the label columns
    (`scores`' `per_label_f1`)."""
    y = np.asarray(y, dtype=np.float32)
    groups = np.asarray(groups)
    key = stratification_key(y)
    plan = quality.plan(key, groups, cfg.eval_fraction, cfg.seed)
    n_tasks = len(np.unique(groups))
    at_least_one = bool(len(y) == 0 or y.sum(1).min() >= 1)

    def fitted(rows: np.ndarray) -> Tuple[MCHead, Optional[MultiLabelPrior]]:
        prior = MultiLabelPrior.fitted(prototypes, emb[rows], y[rows]) if prototypes is not None else None
        return train_sigmoid_head(emb[rows], y[rows], cfg, balance, prior), prior

    def proba(train: np.ndarray, rows: np.ndarray) -> np.ndarray:
        head, prior = fitted(train)
        return mc_proba(head, emb[rows], cfg.num_draws, prior, sigmoid=True).mean(-1)

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
        metrics = {**scores(y[test], pred, labels), "eval": plan.method}
    elif plan.method.endswith("fold cv") and oof_ok:
        pred = np.zeros(y.shape, dtype=bool)
        for train, test in folds:
            pred[test] = decide(oof[test], fit_thresholds(informative[train], y[train]), bool(y[train].sum(1).min() >= 1))
        metrics = {**scores(y, pred, labels), "eval": plan.method}
    head, prior = fitted(np.arange(len(y)))
    metrics.update(fit=head.fit_stats_, balance=balance, thresholds_from="out-of-fold" if oof_ok else "default")
    if prior is not None:
        metrics["prior_scale"] = prior.scale
    state = {k: v.numpy() for k, v in head.state_dict().items()}
    cardinality = float(y.sum(1).mean()) if len(y) else 1.0
    return MultiLabelFit(state, thresholds, at_least_one, cardinality, metrics, oof if oof_ok else None, prior,
                         informative if oof_ok else None)
