"""When can the team stop labeling? Stabilizing predictions on a fixed stop set.

Bloodgood & Vijay-Shanker (2009): keep a set of unlabeled texts aside (the stop set) and compare
each model's predictions on it with the predictions of the model some labels earlier. Once
Cohen's kappa between them stays at or above `KAPPA` for `CHECKS` windows in a row, more labels
no longer change what the model says: labeling has stopped paying off. The server checks
versions (one per retrain), the simulation checks rounds; both call `signal`. A project with one
model line per question gets one signal per question of its current config, on its own history
(`question_signals`), and may stop when all of them say so (`combine`), bar those shown on too
few texts to ever check.

A window is `max(min_labels, 10% of the labels)`: a version trained on one more label always
agrees with its predecessor, so agreement is only evidence across a real step of labels.
"""
from __future__ import annotations

import hashlib
import math
from typing import Dict, List, Optional, Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score

KAPPA = 0.99
CHECKS = 2
STOP_SET = 1000  # texts
MIN_COMMON = 50  # stop-set texts two versions must share for their kappa to count
WINDOW_FRACTION = 0.1
#: A question's signal `status` (`question_signals`): no trained version predicts it yet (keep
#: labeling), or too few stop-set texts show it for any check (left out of the project's decision).
UNTRAINED, LEFT_OUT = "untrained", "left out"


def hash_order(task_ids: Sequence[int]) -> List[int]:
    """Task ids in a fixed pseudo-random order (by a hash of the id): the first `STOP_SET` are
    the stop set, the same tasks for every version as long as they stay unlabeled."""
    return sorted(task_ids, key=lambda t: hashlib.blake2b(str(int(t)).encode(), digest_size=8).digest())


def kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Cohen's kappa of two prediction lists; 1.0 when they are identical (also if constant)."""
    a, b = np.asarray(a), np.asarray(b)
    if np.array_equal(a, b):
        return 1.0
    value = cohen_kappa_score(a, b)
    return 0.0 if math.isnan(value) else float(value)


def window(n_labels: int, min_labels: int) -> int:
    return max(min_labels, math.ceil(WINDOW_FRACTION * n_labels))


def signal(history: Sequence[Dict], min_labels: int) -> Dict[str, object]:
    """Whether the team could stop, and why, from versions (oldest first) that each hold
    `n_labels`, `stop_ids` and `stop_pred` (parallel lists) and `version`."""
    checks: List[Dict[str, object]] = []
    entries = [h for h in history if h.get("stop_ids")]
    current: Optional[Dict] = entries[-1] if entries else None
    while current is not None and len(checks) < CHECKS:
        step = window(current["n_labels"], min_labels)
        earlier = [h for h in entries if h["n_labels"] <= current["n_labels"] - step]
        if not earlier:
            break
        ref = earlier[-1]
        mine = dict(zip(current["stop_ids"], current["stop_pred"]))
        common = [t for t in ref["stop_ids"] if t in mine]
        if len(common) < MIN_COMMON:
            break
        theirs = dict(zip(ref["stop_ids"], ref["stop_pred"]))
        if len({mine[t] for t in common}) < 2:  # one class everywhere: agreement says nothing
            break
        checks.append({"version": current.get("version"), "against": ref.get("version"),
                       "labels": [ref["n_labels"], current["n_labels"]], "texts": len(common),
                       "kappa": round(kappa([mine[t] for t in common], [theirs[t] for t in common]), 4)})
        current = ref
    stop = len(checks) == CHECKS and all(c["kappa"] >= KAPPA for c in checks)
    if len(checks) < CHECKS:
        reason = (f"not enough history yet: the check needs {CHECKS} windows of labels (each 10% of the labels, at "
                  f"least {min_labels}) with predictions of at least 2 classes on a shared stop set of at least "
                  f"{MIN_COMMON} unlabeled texts")
    elif stop:
        reason = (f"you could stop now: over the last {CHECKS} windows of labels ({checks[-1]['labels'][0]} -> "
                  f"{checks[0]['labels'][1]}) the predictions on {checks[0]['texts']} unlabeled texts changed "
                  f"less than kappa {KAPPA} allows (kappa {', '.join(str(c['kappa']) for c in reversed(checks))})")
    else:
        reason = (f"keep labeling: the predictions on the stop set still change (kappa "
                  f"{', '.join(str(c['kappa']) for c in reversed(checks))}; stop at {KAPPA} for {CHECKS} windows in a row)")
    return {"stop": stop, "reason": reason, "checks": checks, "kappa_threshold": KAPPA}


def question_signals(history: Sequence[Dict], min_labels: int, questions: Sequence[str]
                     ) -> Dict[str, Dict[str, object]]:
    """Per question of the current config (`questions`, by name), `signal` on its own history:
    lines whose `questions` map each question to its `n_labels` (the labels that count for it:
    its window) and, once trained, its `stop_ids` and `stop_pred`. A question the newest line did
    not train (new in the config, or too few labels) gets an `UNTRAINED` signal with the reason;
    one the newest version predicts on fewer than `MIN_COMMON` stop-set texts (a conditional
    question shown on few texts) can give no evidence and gets a `LEFT_OUT` one."""
    newest = (history[-1].get("questions") or {}) if history else {}
    out: Dict[str, Dict[str, object]] = {}
    for name in questions:
        line = newest.get(name) or {}
        if line.get("stop_ids") is None:
            why = line.get("reason") or "the newest version does not predict it"
            out[name] = {"stop": False, "reason": f"not trained yet: {why}", "checks": [], "kappa_threshold": KAPPA,
                         "status": UNTRAINED}
        elif len(line["stop_ids"]) < MIN_COMMON:
            out[name] = {"stop": False, "checks": [], "kappa_threshold": KAPPA, "status": LEFT_OUT,
                         "reason": f"shown on too few unlabeled texts to check: {len(line['stop_ids'])} < {MIN_COMMON}"}
        else:
            own = [{"version": h.get("version"), **h["questions"][name]} for h in history
                   if (h.get("questions") or {}).get(name, {}).get("stop_ids") is not None]
            out[name] = signal(own, min_labels)
    return out


def combine(signals: Dict[str, Dict[str, object]]) -> Dict[str, object]:
    """The project's signal from its questions' (`question_signals`): it could stop when every
    question could, apart from those `LEFT_OUT` (named aside: they must not keep a project
    labeling forever); an `UNTRAINED` one means keep labeling. Otherwise the reason names the
    questions whose predictions still change, that lack the history to tell, or are untrained."""
    aside = {name: s for name, s in signals.items() if s.get("status") == LEFT_OUT}
    counted = {name: s for name, s in signals.items() if name not in aside}
    stop = bool(counted) and all(s["stop"] for s in counted.values())
    kappas = {name: ", ".join(str(c["kappa"]) for c in reversed(s["checks"])) for name, s in counted.items()}
    left_out = ("; left out of the decision: " + "; ".join(f"{name} ({s['reason']})" for name, s in aside.items())
                if aside else "")
    if not counted:
        reason = "not enough history yet: no question can be checked" + left_out
    elif stop:
        reason = ("you could stop now: the predictions of every question are stable ("
                  + "; ".join(f"{name}: kappa {kappas[name]}" for name in counted) + ")" + left_out)
    else:
        waiting = {name: s for name, s in counted.items() if not s["stop"]}
        untrained = [f"{name} {s['reason']}" for name, s in waiting.items() if s.get("status") == UNTRAINED]
        trained = {name: s for name, s in waiting.items() if s.get("status") != UNTRAINED}
        changing = [f"{name} (kappa {kappas[name]})" for name, s in trained.items() if len(s["checks"]) == CHECKS]
        young = [name for name, s in trained.items() if len(s["checks"]) < CHECKS]
        reason = "keep labeling: " + "; ".join(
            ([f"the predictions of {', '.join(changing)} still change"] if changing else []) +
            ([f"{', '.join(young)}: not enough history yet"] if young else []) + untrained) + left_out
    return {"stop": stop, "reason": reason, "checks": [], "kappa_threshold": KAPPA, "questions": dict(signals)}
