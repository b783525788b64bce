"""How good is a version? Held-out accuracy and macro-F1 on the project's own labels.

The split is by task, not by label: two annotators of one task land on the same side, so a text
never is both trained on and measured. It works for any number of classes and labels: a held-out
slice of EVAL_FRACTION of the tasks when it holds at least `MIN_EVAL` of them, k-fold
cross-validation below that (unless the caller allows no folds: fine-tuning k more models is too
dear), no metric (with the reason) below 4 tasks or with EVAL_FRACTION=0. Stratification is best
effort: where the classes are too thin to stratify, the split is plain; that costs the metric a
little, never the run.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, train_test_split

MIN_EVAL = 20  # tasks in a held-out slice; below this a slice is too noisy, so k-fold
MIN_TASKS = 4  # below this, no metric at all
MAX_FOLDS = 5

Split = Tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Plan:
    """How a version is measured: `method` ("holdout", "5-fold cv", "none"), the (train, eval)
    index splits, and why there is no metric when there is none."""

    method: str
    splits: List[Split] = field(default_factory=list)
    reason: Optional[str] = None


def plan(y: np.ndarray, groups: Sequence[int], fraction: float, seed: int, max_folds: int = MAX_FOLDS) -> Plan:
    """Split labels `y` (grouped by task id) to measure a version trained on them."""
    if fraction <= 0:
        return Plan("none", reason="EVAL_FRACTION=0 turns held-out quality off")
    groups = np.asarray(groups)
    n_tasks = len(np.unique(groups))
    if n_tasks < MIN_TASKS:
        return Plan("none", reason=f"{n_tasks} labeled tasks; held-out quality needs at least {MIN_TASKS}")
    if round(n_tasks * fraction) >= MIN_EVAL:
        return Plan("holdout", [_holdout(y, groups, fraction, seed)])
    if max_folds < 2:
        return Plan("none", reason=f"{n_tasks} labeled tasks: a held-out slice of {fraction:g} would hold fewer "
                                   f"than {MIN_EVAL}, and this mode measures on a slice only")
    k = min(max_folds, n_tasks)
    return Plan(f"{k}-fold cv", _folds(y, groups, k, seed))


def _holdout(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> Split:
    """`fraction` of the tasks held out, stratified by class when every class can be split."""
    tasks, first = np.unique(groups, return_index=True)
    task_class = y[first]
    n_eval = int(round(len(tasks) * fraction))
    classes, counts = np.unique(task_class, return_counts=True)
    fits = counts.min() >= 2 and min(n_eval, len(tasks) - n_eval) >= len(classes)
    train_tasks, eval_tasks = train_test_split(tasks, test_size=n_eval, random_state=seed,
                                               stratify=task_class if fits else None)
    held = np.isin(groups, eval_tasks)
    return np.flatnonzero(~held), np.flatnonzero(held)


def _folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> List[Split]:
    """k group folds, stratified when some class has k labels (sklearn refuses otherwise)."""
    if np.unique(y, return_counts=True)[1].max() >= k:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "the least populated class has only N members": expected
        warnings.simplefilter("ignore", UserWarning)
        folds = splitter.split(np.zeros(len(y)), y, groups)
        return [(train, test) for train, test in folds if len(train) and len(test)]


def scores(y: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """Accuracy and macro-F1 (over the classes present in `y`)."""
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=np.unique(y), zero_division=0)),
        "n_eval": int(len(y)),
    }


def measure(plan_: Plan, y: np.ndarray, predict_fold: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Dict[str, object]:
    """Metrics of `plan_`; `predict_fold(train_idx, eval_idx)` trains a probe and returns its
    predicted classes for `eval_idx`. Without splits, the metrics say why there are none."""
    if not plan_.splits:
        return {"eval": "none", "reason": plan_.reason}
    truth, pred = [], []
    for train, test in plan_.splits:
        pred.append(predict_fold(train, test))
        truth.append(y[test])
    return {**scores(np.concatenate(truth), np.concatenate(pred)), "eval": plan_.method}
