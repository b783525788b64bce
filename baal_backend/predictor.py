"""Predictions: each text's class, its probability, and the score Label Studio sorts tasks by.

From the project's served version (`served`); before its first version from a base checkpoint
that knows the classes, else the cold-start rule (k-means representatives first) with the
label-name prior's classes, pre-filled only once the project's labels show the prior beats
chance. The texts asked about join the project's unlabeled pool (`remember_tasks`).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Dict, Sequence, Tuple

import numpy as np

from . import acquisition, cold_start
from .hf import match_labels
from .language import LanguageWatch
from .logs import public_error
from .prior import LabelPrior, better_than_chance
from .project import Project
from .projects import ProjectTable
from .question_models import QuestionModels, QuestionPrediction, predict_questions
from .registry import UNTRAINED
from .schema import Schema
from .served import ServedVersions
from .settings import Settings
from .shared_models import SharedModels

log = logging.getLogger(__name__)

PREDICT_CHUNK = 2048  # texts per MC-Dropout pass in /predict
POOL_TEXT_CHARS = 2000  # of each pool text kept: more than the encoder reads (MAX_LENGTH tokens)


@dataclass(frozen=True)
class Predictions:
    """What a batch of texts gets: the most probable class (of the MC-averaged prediction), its
    probability, the score Label Studio sorts by, and whether the class is worth showing:
    before a project's first version only a model that already knows its classes pre-fills one."""

    version: str
    labels: Tuple[str, ...]
    best_index: np.ndarray  # [n] into labels
    best_probability: np.ndarray  # [n]
    scores: np.ndarray  # [n]
    prefill: bool = True
    questions: Tuple[QuestionPrediction, ...] = ()  # a version with one model line per question: their answers

    def best(self, i: int) -> Tuple[str, float]:
        return self.labels[int(self.best_index[i])], float(self.best_probability[i])


class Predictor:
    def __init__(self, settings: Settings, table: ProjectTable, models: SharedModels, served: ServedVersions):
        self.settings = settings
        self.table = table
        self.models = models
        self.served = served
        self._rng = np.random.default_rng()
        self._verdicts: Dict[str, Tuple[Tuple, bool]] = {}  # project -> (its labels' key, prior beats chance)
        self._lock = threading.Lock()
        self.language = LanguageWatch(settings.baseline_model_name)  # says once if the texts need another encoder
        table.on_forget(self.forget)

    def predict(self, project_id: str, schema: Schema, texts: Sequence[str], task_ids: Sequence[object] = ()
                ) -> Predictions:
        """Classes and scores of `texts` from the current version.

        Before a project's first version, a base model that knows the classes (a fine-tuned
        checkpoint) predicts as usual; otherwise no class is pre-filled and the scores follow the
        cold-start diversity rule. Texts go through in chunks: memory O(texts), not
        O(texts x classes x draws). The tasks (`task_ids`, parallel to `texts`) join the
        project's unlabeled pool (`remember_tasks`).
        """
        self.remember_tasks(project_id, task_ids, texts)
        warning = self.language.observe(project_id, texts) if self.table.project(project_id).exists else None
        if warning:
            self.table.problems[f"language:{project_id}"] = warning
        version, clf = self.served.classifier(project_id)
        if isinstance(clf, QuestionModels):
            questions, scores = self._question_chunks(clf, schema, texts)
            zeros = np.zeros(len(texts))
            return Predictions(version, schema.labels, zeros.astype(np.int64), zeros, scores, False, questions)
        if clf is None and schema.simple:  # a checkpoint knows one set of classes: one single-choice question's
            clf = self.models.base_classifier(schema.labels)
        n = len(texts)
        best_index, best_probability, scores = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
        if clf is None:
            return self._cold_predictions(project_id, schema, texts)
        for start in range(0, n, PREDICT_CHUNK):
            part = slice(start, min(start + PREDICT_CHUNK, n))
            probs = align(clf.predict_proba(texts[part], self.settings.num_draws), clf.labels, schema.labels)
            mean = probs.mean(-1)
            best_index[part] = mean.argmax(1)
            best_probability[part] = mean[np.arange(len(mean)), best_index[part]]
            scores[part] = acquisition.prediction_scores(probs, self.settings.heuristic, self.settings.score_mode,
                                                         self._rng)
        return Predictions(version, schema.labels, best_index, best_probability, scores)

    def _question_chunks(self, models: QuestionModels, schema: Schema, texts: Sequence[str]
                         ) -> Tuple[Tuple[QuestionPrediction, ...], np.ndarray]:
        """`predict_questions` over `PREDICT_CHUNK` texts at a time, as the single-question path:
        each question's draws are O(chunk x labels x draws), whatever the number of texts. A text's
        answers and score depend on that text alone, so the chunks' outputs simply join."""
        parts = [predict_questions(models, schema, texts[start:start + PREDICT_CHUNK], self.settings.num_draws,
                                   self.settings.heuristic, self.settings.score_mode, self._rng)
                 for start in range(0, max(len(texts), 1), PREDICT_CHUNK)]
        joined = tuple(
            replace(first, choices=[row for questions, _ in parts for row in questions[i].choices],
                    **{name: np.concatenate([getattr(questions[i], name) for questions, _ in parts])
                       for name in ("confidence", "shown", "scores")})
            for i, first in enumerate(parts[0][0]))
        return joined, np.concatenate([scores for _, scores in parts])

    def remember_tasks(self, project_id: str, task_ids: Sequence[object], texts: Sequence[str]) -> None:
        """Keep the tasks Label Studio asked about: the pool the learner refines its prior on.
        Only for a project that has state (a read never creates it); a failing write costs the
        pool a few texts, never the prediction."""
        project = self.table.project(project_id)
        rows = [(t, text[:POOL_TEXT_CHARS]) for t, text in zip(task_ids, texts)
                if isinstance(t, int) and not isinstance(t, bool) and 0 < t < 2**63]
        if not rows or not project.exists:
            return
        try:
            project.store.remember_tasks(rows)
        except Exception as exc:  # noqa: BLE001 - the pool may miss a few texts, the prediction never
            log.warning("project %s: cannot remember %d tasks for the pool: %s", project_id, len(rows), public_error(exc))

    def _cold_predictions(self, project_id: str, schema: Schema, texts: Sequence[str]) -> Predictions:
        """Before a project's first version: the label-name prior's classes, pre-filled only once
        the project's own stored labels show the prior beats chance; scores that put the k-means
        representatives (a first batch of MIN_LABELS texts) first."""
        emb = self.models.encoder.embed(texts)
        n = len(texts)
        prior = self.models.label_prior(schema)
        scores = cold_start.diversity_scores(emb, self.settings.min_labels, self.settings.seed)
        if self.settings.score_mode == "uncertainty":
            scores = 1.0 - scores
        if prior is None:
            return Predictions(UNTRAINED, schema.labels, np.zeros(n, dtype=np.int64), np.zeros(n), scores, prefill=False)
        probs = prior.probabilities(emb)
        best = probs.argmax(1)
        return Predictions(UNTRAINED, schema.labels, best, probs[np.arange(n), best], scores,
                           prefill=self._prior_beats_chance(project_id, schema, prior))

    def _prior_beats_chance(self, project_id: str, schema: Schema, prior: LabelPrior) -> bool:
        """Do the project's stored labels show the prior is better than guessing? One label per
        task (the newest 500 tasks), right in at least 2 classes, and a one-sided binomial test
        at 1% against 1/classes. With no labels nobody knows: no pre-filled class. The verdict is
        kept until the label count changes."""
        project = self.table.project(project_id)
        count = project.label_count()
        if count == 0:  # never opens (so never creates) a store that is not there
            return False
        key = (count, schema.labels, schema.descriptions)
        with self._lock:
            if self._verdicts.get(project_id, (None,))[0] == key:
                return self._verdicts[project_id][1]
        per_task = {lb.task_id: lb for lb in sorted(project.store.all(), key=lambda lb: lb.annotation_id)
                    if lb.label in schema.labels}
        labels = list(per_task.values())[-500:]
        verdict = False
        if labels:
            y = np.array([schema.labels.index(lb.label) for lb in labels])
            right = prior.logits(self.models.encoder.embed([lb.text for lb in labels])).argmax(1) == y
            verdict = len(set(y[right])) >= 2 and better_than_chance(int(right.sum()), len(y), len(schema.labels))
        with self._lock:
            self._verdicts[project_id] = (key, verdict)
        return verdict

    def forget(self, project: Project) -> None:
        with self._lock:
            self._verdicts.pop(project.id, None)
        self.language.forget(project.id)


def align(probs: np.ndarray, have: Sequence[str], want: Sequence[str]) -> np.ndarray:
    """Probabilities over a model's classes `have` -> over the label config's `want` (by name).

    Classes the model never knew (the config grew) get probability 0 until the next version;
    classes the config dropped are left out and each draw is renormalised over what is left, so
    rows still sum to 1 (heuristics read rows that do not as logits).
    """
    if tuple(have) == tuple(want):
        return probs
    out = np.zeros((probs.shape[0], len(want), probs.shape[2]), dtype=probs.dtype)
    for target, source in match_labels(have, want).items():
        out[:, target] = probs[:, source]
    total = out.sum(axis=1, keepdims=True)
    uniform = np.full_like(out, 1.0 / len(want))
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), uniform)
