"""What each version knows about its project, kept with it: the report page, the stopping signal
and the export read these files and never re-score a large pool on request.

After a version is published: `score_pool` scores a fixed sample of the unlabeled pool (the
first `REPORT_POOL` tasks in `stopping.hash_order`; its head is the stop set) and `suspicious`
ranks the labels by how strongly heads trained without them disagree. The version's files get
`insight.json`; the project's `history.jsonl` gets one line per version (its labels, quality,
stop-set predictions), which outlives pruned versions. A project with one model line per question
(several questions, or a multi-label one) gets the same files per question from `question_insight`.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import acquisition, stopping
from .labels import Label
from .model import Classifier
from .project import Project
from .registry import atomic_write_text
from .schema import Schema

REPORT_POOL = 5000  # unlabeled tasks scored with each version
SUSPICIOUS = 200  # labels listed
TEXT_CHARS = 300  # of each text, in the files and the page
HISTORY = "history.jsonl"
KEEP_STOP_SETS = 100  # newest versions whose stop-set predictions are kept
INSIGHT = "insight.json"
CHUNK = 1024
NO_OUT_OF_FOLD = "out-of-fold probabilities need EVAL_FRACTION > 0 and at least 4 labeled tasks"


def top_two(mean: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(indices [n, 2], probabilities [n, 2]) of each row's two most probable classes."""
    idx = np.argsort(-mean, axis=1, kind="stable")[:, :2]
    if idx.shape[1] == 1:  # one class: no runner-up
        idx = np.concatenate([idx, idx], axis=1)
    return idx, np.take_along_axis(mean, idx, axis=1)


def score_pool(clf: Classifier, pool: Sequence[Tuple[int, str]], draws: int, heuristic: str, score_mode: str,
               rng: np.random.Generator) -> List[Dict]:
    """One row per sampled unlabeled task: its two most probable classes (of a version just
    trained, so its classes are the config's), their margin and the score Label Studio would
    sort by. Rows follow the stop-set order."""
    labels = clf.labels
    text_of = dict(pool)
    ids = stopping.hash_order(list(text_of))[:REPORT_POOL]
    rows: List[Dict] = []
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        probs = clf.predict_proba([text_of[t] for t in part], draws)
        idx, p = top_two(probs.mean(-1))
        scores = acquisition.prediction_scores(probs, heuristic, score_mode, rng)
        for k, task in enumerate(part):
            rows.append({"task": int(task), "text": text_of[task][:TEXT_CHARS],
                         "top": [labels[idx[k, 0]], round(float(p[k, 0]), 4)],
                         "second": [labels[idx[k, 1]], round(float(p[k, 1]), 4)],
                         "margin": round(float(p[k, 0] - p[k, 1]), 4), "score": round(float(scores[k]), 4)})
    return rows


def suspicious(labels: Sequence[Label], classes: Sequence[str], oof: np.ndarray, limit: int = SUSPICIOUS) -> List[Dict]:
    """The labels the out-of-fold heads doubt most: lowest probability of the given class first
    (cleanlab's self-confidence), with the class those heads preferred."""
    given = np.array([classes.index(lb.label) for lb in labels])
    p_given = oof[np.arange(len(labels)), given]
    order = np.argsort(p_given, kind="stable")[:limit]
    best = oof.argmax(1)
    return [{"annotation": labels[i].annotation_id, "task": labels[i].task_id, "text": labels[i].text[:TEXT_CHARS],
             "label": labels[i].label, "p_label": round(float(p_given[i]), 4), "model_says": classes[best[i]],
             "p_model": round(float(oof[i, best[i]]), 4), "suspicion": round(float(1 - p_given[i]), 4)}
            for i in order if best[i] != given[i] or p_given[i] < 0.5]


def record(project: Project, version: str, n_labels: int, metrics: Dict, pool_rows: List[Dict],
           suspects: Optional[List[Dict]], created_at: float) -> Dict:
    """Write the version's `insight.json` and append its line to the project's history."""
    stop = pool_rows[:stopping.STOP_SET]
    entry = {
        "version": version, "n_labels": n_labels, "created_at": created_at,
        "accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"), "eval": metrics.get("eval"),
        "stop_ids": [r["task"] for r in stop], "stop_pred": [r["top"][0] for r in stop],
        "uncertainty": round(float(np.mean([1 - r["margin"] for r in stop])), 4) if stop else None,
    }
    write(project, version, {"version": version, "pool": pool_rows, "suspicious": suspects,
                             "suspicious_reason": None if suspects is not None else NO_OUT_OF_FOLD}, entry)
    return entry


def write(project: Project, version: str, insight: Dict, entry: Dict) -> None:
    """Write a version's `insight.json` and append its `entry` to the project's history: the whole
    history rewritten atomically (never a torn line); only the newest `KEEP_STOP_SETS` versions
    keep their stop-set predictions (the stopping signal looks back 2 windows of 10%)."""
    atomic_write_text(project.registry.path(version) / INSIGHT, json.dumps(insight))
    lines = history(project) + [entry]
    for old in lines[:-KEEP_STOP_SETS]:
        for line in [old, *(old.get("questions") or {}).values()]:
            line.pop("stop_ids", None), line.pop("stop_pred", None)
    atomic_write_text(project.root / HISTORY, "".join(json.dumps(line) + "\n" for line in lines))


def without_stop_sets(line: Dict) -> Dict:
    """A history line without its stop-set predictions (also its questions'): what the page shows."""
    out = {k: v for k, v in line.items() if k not in ("stop_ids", "stop_pred")}
    if isinstance(out.get("questions"), dict):
        out["questions"] = {name: without_stop_sets(q) for name, q in out["questions"].items()}
    return out


def history(project: Project) -> List[Dict]:
    """Every version's history line, oldest first (a torn last line, from a crash, is skipped)."""
    try:
        lines = (project.root / HISTORY).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def current(project: Project) -> Optional[Dict]:
    """The newest version's `insight.json` that exists (None before the first one)."""
    for name in reversed(project.registry.list()):
        try:
            return json.loads((project.registry.path(name) / INSIGHT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def stop_signal(project: Project, min_labels: int, schema: Optional[Schema]) -> Dict[str, object]:
    """The stopping signal under the project's current config (None: it has none yet): a config
    with one model line per question gets one per question it asks (`stopping.question_signals`,
    whatever the newest version trained) and stops when all of them do (`stopping.combine`)."""
    lines = history(project)
    if schema is None or schema.simple:
        return stopping.signal(lines, min_labels)
    return stopping.combine(stopping.question_signals(lines, min_labels, [q.from_name for q in schema.questions]))


def to_label(insight: Optional[Dict], threshold: float) -> List[Dict]:
    """The sampled unlabeled tasks whose margin is at most `threshold`, most uncertain first, as
    flat rows (the page's CSV/JSON export has the same columns)."""
    rows = sorted((r for r in (insight or {}).get("pool") or [] if r["margin"] <= threshold), key=lambda r: r["margin"])
    return [{"task": r["task"], "text": r["text"], "top": r["top"][0], "p_top": r["top"][1], "second": r["second"][0],
             "p_second": r["second"][1], "margin": r["margin"], "score": r["score"]} for r in rows]
