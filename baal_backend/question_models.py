"""A version of a project that asks several questions, or a multi-label one: one classifier per
question, each on the shared encoder, saved side by side in one version directory.

A project with one single-choice question keeps the one-classifier layout of every earlier
release (`model.load_classifier_dir` reads both).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from . import acquisition, multilabel, multilabel_acquisition, multilabel_finetune
from .encoder import Encoder
from .model import META_FILE, Classifier, load_classifier_dir
from .schema import Schema

KIND = "questions"


class QuestionModels:
    """Per question (by `from_name`, in config order), its classifier."""

    kind = KIND

    def __init__(self, members: Sequence[Tuple[str, Classifier]]):
        self.members: Dict[str, Classifier] = dict(members)

    def save(self, path: Path) -> None:
        index = []
        for i, (name, clf) in enumerate(self.members.items()):
            folder = path / f"q{i}"
            folder.mkdir()
            clf.save(folder)
            index.append({"from_name": name, "dir": folder.name, "kind": clf.kind})
        (path / META_FILE).write_text(json.dumps({"kind": KIND, "questions": index}))

    @classmethod
    def load(cls, path: Path, load_member: Callable[[Path], Classifier]) -> "QuestionModels":
        index = json.loads((path / META_FILE).read_text())["questions"]
        return cls([(row["from_name"], load_member(path / row["dir"])) for row in index])


@dataclass(frozen=True)
class QuestionPrediction:
    """One question's predicted answer for a batch of texts: per text the choices to pre-fill
    (empty: none), their probability (a multi-label answer: the mean over its choices), whether
    Label Studio shows the question there, and its score (oriented as the project's scores)."""

    from_name: str
    choices: List[Tuple[str, ...]]
    confidence: np.ndarray
    shown: np.ndarray
    scores: np.ndarray


def predict_questions(models: QuestionModels, schema: Schema, texts: Sequence[str], draws: int, heuristic: str,
                      score_mode: str, rng: np.random.Generator) -> Tuple[List[QuestionPrediction], np.ndarray]:
    """Each trained question's answers, and each text's score: its least certain shown question
    decides, so the task whose weakest answer is the most doubtful is served first. Questions are
    compared on the `rank` scale (in [0, 1], lowest = most informative, whatever the number of
    classes); with `SCORE_MODE=uncertainty` the task's score is 1 minus that, highest first. A
    conditional question counts only where the predicted answers show it (not where the question
    it depends on has no prediction); one under a condition the backend cannot evaluate is
    neither pre-filled nor scored."""
    n = len(texts)
    out: List[QuestionPrediction] = []
    answers: List[Dict[str, Tuple[str, ...]]] = [{} for _ in range(n)]
    for question in schema.questions:
        clf = models.members.get(question.from_name)
        if clf is None or tuple(clf.labels) != question.labels or question.conditional:
            continue
        probs = clf.predict_proba(texts, draws)
        mean = probs.mean(-1)
        if question.multiple:
            choices = clf.choices(probs)
            confidence = np.array([mean[i, [question.labels.index(c) for c in row]].mean() if row else 0.0
                                   for i, row in enumerate(choices)])
            scores = multilabel_acquisition.version_scores(clf, probs, score_mode="rank", rng=rng)
        else:
            best = mean.argmax(1)
            choices = [(question.labels[k],) for k in best]
            confidence = mean[np.arange(n), best]
            scores = acquisition.prediction_scores(probs, heuristic, "rank", rng)
        when = question.shown_when
        shown = np.array([when is None or (when.tag in a and when.holds(a)) for a in answers], dtype=bool)
        for row, given in zip(answers, choices):
            row[question.from_name] = given
        out.append(QuestionPrediction(question.from_name, choices, confidence, shown, np.asarray(scores, dtype=float)))
    rank = combined_scores(out, n)
    return out, 1.0 - rank if score_mode == "uncertainty" else rank


def combined_scores(questions: Sequence[QuestionPrediction], n: int) -> np.ndarray:
    """Per text, the rank score of its least certain shown question (1.0, the least informative,
    where none is shown)."""
    table = np.array([np.where(q.shown, q.scores, np.nan) for q in questions]).reshape(len(questions), n)
    return np.array([col[~np.isnan(col)].min() if (~np.isnan(col)).any() else 1.0 for col in table.T])


def load_version(path: Path, encoder: Encoder, max_length: int):
    """Whichever classifier a published version directory holds: one per question, a multi-label
    head, or one of `model`'s kinds."""
    kind = json.loads((Path(path) / META_FILE).read_text())["kind"]
    if kind == KIND:
        return QuestionModels.load(Path(path), lambda member: load_version(member, encoder, max_length))
    if kind in (multilabel.KIND, multilabel.KIND_ON_PRIOR):
        return multilabel.MultiLabelClassifier.load(Path(path), encoder)
    if kind == multilabel_finetune.TUNED_KIND:
        return multilabel_finetune.TunedMultiLabelClassifier.load(Path(path), max_length=max_length)
    return load_classifier_dir(Path(path), encoder, max_length)
