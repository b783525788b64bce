"""Training a version of a project that asks several questions, or a multi-label one: one model
line per question on the shared encoder's embeddings (`question_models`).

Each question learns from the annotations that count for it (`answers.for_question`): a single-
choice question through head mode's trainer (`training.fit_head`, with its label-name prior), a
multi-label one through `multilabel.fit_multilabel` (with its labels' name prior, `LABEL_PRIOR`)
and, in fine-tune mode when it is the config's only question, `multilabel_finetune` from that fit.
Several questions stay on the shared frozen embeddings in either mode: a fine-tuned body per
question would multiply a version's size and a prediction's encoding by the questions.
A question with too few labels yet is left out of the version (its tasks get no pre-filled answer
for it, and its scores do not count) until it has `MIN_LABELS`; the others do not wait for it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from . import multilabel, trainer_process
from .answers import for_question
from .encoder import Encoder
from .labels import Label
from .model import Classifier
from .prior import LabelPrior
from .multilabel_finetune import fit_tuned_with_quality
from .question_models import QuestionModels
from .schema import Question, Schema
from .training import TrainConfig, fit_head, head_config

log = logging.getLogger(__name__)

#: What a question version learns beyond `TrainConfig`, for the training fingerprint: change it
#: whenever that changes, so versions trained the old way are retrained rather than kept.
QUESTIONS_RECIPE = "multi-label: label-name prior with per-label biases, name anchors"


@dataclass
class QuestionsFit:
    """The version (None when no question had enough labels), each question's quality or the
    reason it was left out, and per trained question its out-of-fold probabilities (the report's
    suspicious labels): [its `for_question` rows, its labels], a single-choice question's class
    probabilities or a multi-label one's per-label sigmoid ones, NaN where the fold's head never saw
    a positive of the label (`multilabel.MultiLabelFit.informative`); absent where its fit had none."""

    models: Optional[QuestionModels]
    metrics: Dict[str, Dict]
    out_of_fold: Dict[str, np.ndarray]


def fit_questions(schema: Schema, labels: List[Label], encoder: Encoder, cfg: TrainConfig, min_labels: int,
                  prior_of: Callable[[Schema], Optional[LabelPrior]], pool_emb: Optional[np.ndarray]) -> QuestionsFit:
    members: List[Tuple[str, Classifier]] = []
    metrics: Dict[str, Dict] = {}
    oof: Dict[str, np.ndarray] = {}
    for question in schema.questions:
        rows = for_question(labels, schema, question)
        why = _too_few(question, rows, min_labels)
        if why:
            metrics[question.from_name] = {"eval": "none", "reason": why, "n_labels": len(rows)}
            continue
        texts, groups = [lb.text for lb, _ in rows], [lb.task_id for lb, _ in rows]
        emb = encoder.embed(texts)
        prior = prior_of(schema.only(question))
        if question.multiple:
            y = multilabel.label_matrix([choices for _, choices in rows], question.labels)
            prototypes = prior.prototypes if prior is not None else None
            fitted = trainer_process.run(multilabel.fit_multilabel, emb, y, groups, head_config(cfg), question.labels,
                                         prototypes)
            clf: Classifier = fitted.classifier(encoder, question.labels)
            if fine_tunes(schema, cfg):
                clf, tuned = fit_tuned_with_quality(encoder.name_or_path, encoder, question.labels, texts, emb, y,
                                                    groups, cfg, fitted, prototypes)
                fitted.metrics = {**tuned, "prior_scale": fitted.metrics.get("prior_scale")}
        else:
            y = np.array([question.labels.index(choices[0]) for _, choices in rows], dtype=np.int64)
            fitted = trainer_process.run(fit_head, emb, y, groups, len(question.labels), head_config(cfg),
                                         prior.prototypes if prior is not None else None,
                                         pool_emb if prior is not None else None)
            clf = fitted.classifier(encoder, question.labels)
        fitted.metrics.pop("fit", None)
        metrics[question.from_name] = {**fitted.metrics, "n_labels": len(rows)}
        members.append((question.from_name, clf))
        own = fitted.informative if question.multiple else fitted.out_of_fold
        if own is not None:
            oof[question.from_name] = own
    return QuestionsFit(QuestionModels(members) if members else None, metrics, oof)


def fine_tunes(schema: Schema, cfg: TrainConfig) -> bool:
    """Whether fine-tune mode fine-tunes this config's version: only when its one question is
    multi-label (several questions share the frozen embeddings; a single-choice one is `simple`)."""
    return cfg.mode == "finetune" and len(schema.questions) == 1 and schema.questions[0].multiple


def _too_few(question: Question, rows: List[Tuple[Label, Tuple[str, ...]]], min_labels: int) -> Optional[str]:
    """Why `question` cannot be trained yet, or None."""
    if len(rows) < min_labels:
        return f"{len(rows)} labels; training needs {min_labels} (MIN_LABELS)"
    if question.multiple:
        chosen = {c for _, choices in rows for c in choices}
        if not chosen or all(len(choices) == len(question.labels) for _, choices in rows):
            return "every label so far is alike (no choice, or all of them): nothing to tell apart"
        return None
    if len({choices[0] for _, choices in rows}) < 2:
        return f"{len(rows)} labels in 1 class; training needs at least 2 classes"
    return None


def summary(metrics: Dict[str, Dict]) -> Dict[str, object]:
    """A version's top-level quality: the mean over its trained questions of macro-F1 (and of
    accuracy, for single-choice ones), with every question's own figures under `questions`."""
    trained = [m for m in metrics.values() if m.get("macro_f1") is not None]
    out: Dict[str, object] = {"questions": metrics, "eval": trained[0]["eval"] if trained else "none"}
    if trained:
        out["macro_f1"] = float(np.mean([m["macro_f1"] for m in trained]))
    accuracies = [m["accuracy"] for m in trained if m.get("accuracy") is not None]
    if accuracies:
        out["accuracy"] = float(np.mean(accuracies))
    return out
