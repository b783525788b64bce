"""Report data of a version with one model line per question (several questions, or a multi-label
one): what `insight` keeps for a one-question project, per question, in the same files.

* The pool sample (the first `insight.REPORT_POOL` tasks in `stopping.hash_order`) scored by
  `question_models.predict_questions`: per task, each question shown there with its answer, its
  confidence and its `rank` score (in [0, 1], lowest = label next), and the task's own: its least
  certain question, its `rank` (the order Label Studio serves in) and its `score` (as stored there).
* One history line per version: its labels and mean quality, and per question its labels, quality
  and stop-set predictions, so each question has its own stopping signal
  (`stopping.question_signals`) on the stop-set tasks where it is shown. A single-choice question's
  prediction is its class. A multi-label question's is the predicted label SET, its choices sorted
  and joined by `SET_SEPARATOR` (reordering the config's choices changes no set): Cohen's kappa
  compares the sets as categories, so a text whose predicted set gains or loses one label counts
  as a changed prediction.
* Suspicious labels per question, from the out-of-fold probabilities of its fit
  (`question_training.QuestionsFit.out_of_fold`): a single-choice question's as `insight.suspicious`
  does for a one-question project; a multi-label one's per annotation and label
  (`multilabel_suspicious`): a label that looks missing or extra.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from . import insight, multilabel, stopping
from .answers import for_question, single_labels
from .labels import Label
from .project import Project
from .question_models import QuestionModels, combined_scores, predict_questions
from .schema import Schema

SET_SEPARATOR = "\x1f"  # joins a multi-label prediction's choices: no choice value holds it
#: How far on the wrong side of its threshold a label's out-of-fold probability must lie to be
#: listed, as a share of the way from the threshold to certainty (0.5: halfway).
CLEAR = 0.5
MISSING, EXTRA, OTHER_CLASS = "missing", "extra", "other class"
#: Each question's figures kept in the history (the newest version's full metrics are in its insight).
HISTORY_METRICS = ("n_labels", "eval", "reason", "accuracy", "macro_f1", "micro_f1")
TO_LABEL_COLUMNS = ["task", "text", "question", "answer", "p_answer", "rank", "score"]
#: The page and the export list by default the sampled texts with this many lowest rank scores
#: (`default_threshold`): each question's heuristic puts its rank scores on a scale of its own (a
#: multi-label question's rarely fall below 0.6), so no fixed cut-off selects a batch in every project.
TO_LABEL_ROWS = 100
SUSPICIOUS_COLUMNS = ["question", "kind", "annotation", "task", "text", "label", "given", "p_label", "threshold",
                      "model_says", "p_model", "suspicion"]


def score_pool(models: QuestionModels, schema: Schema, pool: Sequence[Tuple[int, str]], draws: int, heuristic: str,
               score_mode: str, rng: np.random.Generator) -> Tuple[List[Dict], Set[str]]:
    """(one row per sampled unlabeled task, in stop-set order; the questions the version predicts)."""
    text_of = dict(pool)
    ids = stopping.hash_order(list(text_of))[:insight.REPORT_POOL]
    rows: List[Dict] = []
    predicted: Set[str] = set()
    for start in range(0, len(ids), insight.CHUNK):
        part = ids[start:start + insight.CHUNK]
        answers, scores = predict_questions(models, schema, [text_of[t] for t in part], draws, heuristic, score_mode,
                                            rng)
        predicted |= {q.from_name for q in answers}
        rank = combined_scores(answers, len(part))
        for k, task in enumerate(part):
            shown = {q.from_name: {"choices": list(q.choices[k]), "p": round(float(q.confidence[k]), 4),
                                   "rank": round(float(q.scores[k]), 4)} for q in answers if q.shown[k]}
            rows.append({"task": int(task), "text": text_of[task][:insight.TEXT_CHARS], "answers": shown,
                         "question": min(shown, key=lambda name: shown[name]["rank"]) if shown else None,
                         "rank": round(float(rank[k]), 4), "score": round(float(scores[k]), 4)})
    return rows, predicted


def history_entry(version: str, n_labels: int, metrics: Dict, rows: List[Dict], predicted: Set[str],
                  created_at: float) -> Dict:
    """The version's history line: per question its figures and, where the version predicts it,
    its stop-set predictions (on the stop-set tasks where it is shown)."""
    stop = rows[:stopping.STOP_SET]
    questions = {}
    for name, figures in (metrics.get("questions") or {}).items():
        line = {k: figures[k] for k in HISTORY_METRICS if k in figures}
        if name in predicted:
            shown = [r for r in stop if name in r["answers"]]
            line.update(stop_ids=[r["task"] for r in shown],
                        stop_pred=[SET_SEPARATOR.join(sorted(r["answers"][name]["choices"])) for r in shown])
        questions[name] = line
    return {"version": version, "n_labels": n_labels, "created_at": created_at, "accuracy": metrics.get("accuracy"),
            "macro_f1": metrics.get("macro_f1"), "eval": metrics.get("eval"),
            "uncertainty": round(float(np.mean([1 - r["rank"] for r in stop])), 4) if stop else None,
            "questions": questions}


def multilabel_suspicious(name: str, rows: Sequence[Tuple[Label, Tuple[str, ...]]], labels: Sequence[str],
                          oof: np.ndarray, thresholds: np.ndarray, limit: int = insight.SUSPICIOUS) -> List[Dict]:
    """A multi-label question's doubtful (annotation, label) pairs. Not ticked while its
    out-of-fold probability p lies above the label's threshold t by `CLEAR` of the way to 1
    ((p - t) / (1 - t)): "missing"; ticked while p lies below t by `CLEAR` of the way to 0
    ((t - p) / t): "extra". Ranked by that share (`suspicion`). A NaN probability judges nothing:
    the head that gave it never saw a positive of the label (`multilabel.MultiLabelFit.informative`;
    e.g. a label ticked on one task only)."""
    y = multilabel.label_matrix([choices for _, choices in rows], labels) > 0
    if oof.shape != y.shape:
        raise ValueError(f"{name}: out-of-fold probabilities {oof.shape} for {y.shape} labels")
    t = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1 - 1e-6)[None, :]
    wrong = np.where(y, (t - oof) / t, (oof - t) / (1 - t))
    wrong[np.isnan(wrong)] = -np.inf
    out: List[Dict] = []
    for i, k in zip(*np.unravel_index(np.argsort(-wrong, axis=None, kind="stable")[:limit], y.shape)):
        if not wrong[i, k] >= CLEAR:
            break
        label, given = rows[i]
        out.append({"question": name, "kind": EXTRA if y[i, k] else MISSING, "annotation": label.annotation_id,
                    "task": label.task_id, "text": label.text[:insight.TEXT_CHARS], "label": labels[k],
                    "given": ", ".join(given), "p_label": round(float(oof[i, k]), 4),
                    "threshold": round(float(t[0, k]), 4), "suspicion": round(float(min(wrong[i, k], 1.0)), 4)})
    return out


def suspicious(schema: Schema, labels: Sequence[Label], models: QuestionModels, out_of_fold: Dict[str, np.ndarray]
               ) -> Tuple[Optional[List[Dict]], Dict[str, Optional[str]]]:
    """Every trained question's suspicious labels, most suspicious first (None when no question
    has out-of-fold probabilities), and per trained question why it has none (None: it has)."""
    found: List[Dict] = []
    reasons: Dict[str, Optional[str]] = {}
    for question in schema.questions:
        name, clf, oof = question.from_name, models.members.get(question.from_name), out_of_fold.get(question.from_name)
        if clf is None:
            continue
        reasons[name] = None if oof is not None else insight.NO_OUT_OF_FOLD
        if oof is None:
            continue
        if question.multiple:
            found += multilabel_suspicious(name, for_question(labels, schema, question), question.labels, oof,
                                           clf.thresholds)
        else:
            found += [{"question": name, "kind": OTHER_CLASS, **row}
                      for row in insight.suspicious(single_labels(labels, schema, question), question.labels, oof)]
    found.sort(key=lambda row: -row["suspicion"])
    return (found if any(r is None for r in reasons.values()) else None), reasons


def record(project: Project, version: str, models: QuestionModels, schema: Schema, labels: Sequence[Label],
           out_of_fold: Dict[str, np.ndarray], meta: Dict, pool: Sequence[Tuple[int, str]], draws: int,
           heuristic: str, score_mode: str, rng: np.random.Generator) -> int:
    """Score the pool sample, rank the suspicious labels and write the version's `insight.json`
    and history line (`insight.write`); returns the number of tasks scored."""
    metrics = meta["metrics"]
    rows, predicted = score_pool(models, schema, pool, draws, heuristic, score_mode, rng)
    suspects, reasons = suspicious(schema, labels, models, out_of_fold)
    entry = history_entry(version, meta["n_labels"], metrics, rows, predicted, meta["created_at"])
    data = {"version": version, "pool": rows, "suspicious": suspects,
            "suspicious_reason": None if suspects is not None else insight.NO_OUT_OF_FOLD,
            "questions": {q.from_name: {"multiple": q.multiple, "metrics": metrics["questions"].get(q.from_name, {}),
                                        "suspicious_reason": reasons.get(q.from_name)} for q in schema.questions}}
    insight.write(project, version, data, entry)
    return len(rows)


def default_threshold(pool: Sequence[Dict]) -> float:
    """The page's and the export's default cut-off: the rank score of the `TO_LABEL_ROWS`-th lowest
    pool row (every row when fewer; 1.0 without rows), so they list the texts Label Studio serves
    first, ties included."""
    ranks = sorted(r["rank"] for r in pool)
    return ranks[min(TO_LABEL_ROWS, len(ranks)) - 1] if ranks else 1.0


def to_label(data: Optional[Dict], threshold: Optional[float] = None) -> List[Dict]:
    """The sampled unlabeled tasks whose least certain answer's rank score is at most `threshold`
    (None: `default_threshold`), lowest first, as flat rows (`TO_LABEL_COLUMNS`, as the page's export)."""
    pool = (data or {}).get("pool") or []
    cut = default_threshold(pool) if threshold is None else threshold
    rows = sorted((r for r in pool if r["rank"] <= cut), key=lambda r: r["rank"])
    return [{"task": r["task"], "text": r["text"], "question": r["question"],
             "answer": " + ".join(r["answers"][r["question"]]["choices"]) if r["question"] else "",
             "p_answer": r["answers"][r["question"]]["p"] if r["question"] else None,
             "rank": r["rank"], "score": r["score"]} for r in rows]


def config_insight(schema: Schema, data: Dict) -> Dict:
    """A version's `insight.json` data as the current config reads it: each pool row keeps the
    answers of the questions the config asks (its least certain `question` and `rank` taken again
    from them, 1.0 where none is left, as `combined_scores`), and the suspicious labels theirs."""
    names = {q.from_name for q in schema.questions}
    rows = []
    for row in data.get("pool") or []:
        if set(row["answers"]) <= names:
            rows.append(row)
            continue
        kept = {name: a for name, a in row["answers"].items() if name in names}
        question = min(kept, key=lambda name: kept[name]["rank"]) if kept else None
        rows.append({**row, "answers": kept, "question": question, "rank": kept[question]["rank"] if kept else 1.0})
    suspects = data.get("suspicious")
    return {**data, "pool": rows,
            "suspicious": None if suspects is None else [r for r in suspects if r.get("question") in names]}


def config_history(schema: Schema, lines: Sequence[Dict]) -> List[Dict]:
    """History lines as the current config reads them (the learning curve): a line of a version
    with one model line per question keeps the figures of the questions the config asks, and where
    it drops one, its mean quality (`question_training.summary`) is taken again over those left;
    under a simple config, the line keeps no `questions` (its one question's figures are the line's)."""
    names = {q.from_name for q in schema.questions}
    out = []
    for line in lines:
        figures = line.get("questions")
        if not isinstance(figures, dict) or (set(figures) <= names and not schema.simple):
            out.append(line)
            continue
        kept = {name: q for name, q in figures.items() if name in names}
        mean = {key: [q[key] for q in kept.values() if q.get(key) is not None] for key in ("accuracy", "macro_f1")}
        line = {**line, **{key: float(np.mean(v)) if v else None for key, v in mean.items()}}
        if schema.simple:
            line.pop("questions")
        else:
            line["questions"] = kept
        out.append(line)
    return out


def sections(schema: Schema, stored: Sequence[Label], latest: Dict, stop: Dict) -> List[Dict]:
    """The report page's part per question: its labels per choice, the newest version's metrics
    for it, its stopping signal (`stopping.question_signals`) and its suspicious labels."""
    figures = latest.get("questions") or {}
    signals = stop.get("questions") or {}
    suspects = latest.get("suspicious") or []
    out = []
    for question in schema.questions:
        rows = for_question(stored, schema, question)
        counts = {choice: 0 for choice in question.labels}
        for _, choices in rows:
            for choice in choices:
                counts[choice] += 1
        mine = figures.get(question.from_name) or {}
        out.append({"name": question.from_name, "multiple": question.multiple, "labels": list(question.labels),
                    "labels_per_choice": counts, "n_labels": len(rows), "metrics": mine.get("metrics") or {},
                    "stopping": signals.get(question.from_name),
                    "suspicious": [s for s in suspects if s.get("question") == question.from_name],
                    "suspicious_reason": mine.get("suspicious_reason")})
    return out
