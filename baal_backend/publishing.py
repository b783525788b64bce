"""Fit a version on a project's labels and publish it: the training half of a run.

A version is never trained twice on the same thing: each records a digest of its training input
(`fingerprint`), and a run whose digest equals the current version's is skipped. The published
version serves at once in this process (`served`); its report data (`insight`, or per question
`question_insight`) is written after the run's announcements, so a push to Label Studio never
waits for it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import insight, multilabel_finetune, question_insight, trainer_process
from .answers import decode, single_labels
from .labels import Label, fingerprint
from .logs import public_error
from .model import Classifier, TunedClassifier
from .project import Project
from .question_training import QUESTIONS_RECIPE, fine_tunes, fit_questions, summary
from .schema import Schema
from .served import ServedVersions
from .settings import Settings
from .shared_models import SharedModels
from .training import FINETUNE_RECIPE, TrainConfig, fit_finetune_with_quality, fit_head, head_config

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, settings: Settings, models: SharedModels, served: ServedVersions):
        self.settings = settings
        self.models = models
        self.served = served
        self.train_config = TrainConfig(
            mode=settings.train_mode,
            epochs=settings.epochs,
            learning_rate=settings.learning_rate,
            batch_size=settings.batch_size,
            max_length=settings.max_length,
            eval_fraction=settings.eval_fraction,
            num_draws=settings.num_draws,
            seed=settings.seed,
            prior=settings.label_prior,
        )

    def fit_and_publish(self, project: Project, schema: Schema, record: Dict) -> Callable[[], None]:
        """Train and publish a version (or record why not); returns what writes its report data."""
        if not schema.simple:
            return self._fit_questions(project, schema, record)
        labels = self.training_labels(project, schema)
        classes = {lb.label for lb in labels}
        if len(labels) < self.settings.min_labels or len(classes) < 2:
            record.update(
                status="skipped",
                reason=f"{len(labels)} labels in {len(classes)} classes; training needs "
                f"{self.settings.min_labels} labels in at least 2 classes (MIN_LABELS)",
            )
            log.info("project %s: %s", project.id, record["reason"])
            return _nothing
        pool = project.store.unlabeled()
        digest = self.fingerprint(schema, labels)
        if self._unchanged(project, digest, record):
            return _nothing
        started = time.perf_counter()
        encoder = self.models.encoder
        y = np.array([schema.labels.index(lb.label) for lb in labels], dtype=np.int64)
        texts, groups = [lb.text for lb in labels], [lb.task_id for lb in labels]
        emb = encoder.embed(texts)  # cached per text: this process holds the encoder
        prior = self.models.label_prior(schema)
        pool_emb = encoder.embed([text for _, text in pool]) if prior is not None else None
        # head mode's version; fine-tune mode's warm start (and, in both, the suspicious labels)
        fitted = trainer_process.run(fit_head, emb, y, groups, len(schema.labels), head_config(self.train_config),
                                     prior.prototypes if prior is not None else None, pool_emb)
        metrics, oof = fitted.metrics, fitted.out_of_fold
        fit = metrics.pop("fit")
        log.info("project %s: head fitted on %d labels (and %d class-name prototypes): %d epochs, %d steps, final "
                 "loss %.4f, %.2f s (quality: %s)", project.id, len(labels), fit["labels"] - len(labels), fit["epochs"],
                 fit["steps"], fit["loss"], fit["seconds"], metrics.get("eval"))
        clf: Classifier = fitted.classifier(encoder, schema.labels)
        if self.settings.train_mode == "finetune":
            clf, tuned = fit_finetune_with_quality(self.settings.baseline_model_name, clf, texts, emb, y, groups,
                                                   self.train_config, prior, pool_emb)
            if isinstance(clf, TunedClassifier):  # a checkpoint's own classifier does not use the prior
                tuned.update({k: metrics[k] for k in ("prior_scale", "name_scale") if k in metrics})
            metrics = tuned
        meta = {
            "project": project.id,
            "mode": self.settings.train_mode,
            "base_model": self.settings.baseline_model_name,
            "encoder": {"name": self.settings.baseline_model_name, "id": encoder.identity, "dim": encoder.dim},
            "fingerprint": digest,
            "labels": list(schema.labels),
            "n_labels": len(labels),
            "annotation_ids": [lb.annotation_id for lb in labels],
            "label_counts": {name: int((y == k).sum()) for k, name in enumerate(schema.labels)},
            "metrics": metrics,
            "train_seconds": round(time.perf_counter() - started, 3),
            "created_at": time.time(),
        }
        name = project.registry.publish(clf.save, meta)
        self.served.serve(project, name, clf)
        record.update(status="published", version=name, n_labels=len(labels))
        log.info("project %s: published %s (%d labels, %s)", project.id, name, len(labels), metrics)
        return lambda: self._record_insight(project, name, clf, labels, schema, oof, meta, pool)

    def _record_insight(self, project: Project, name: str, clf: Classifier, labels: Sequence[Label], schema: Schema,
                        oof: Optional[np.ndarray], meta: Dict, pool: Sequence[Tuple[int, str]]) -> None:
        """The version's report files (`insight`)."""
        def write() -> int:
            rows = insight.score_pool(clf, pool, self.settings.num_draws, self.settings.heuristic,
                                      self.settings.score_mode, np.random.default_rng(self.settings.seed))
            suspects = insight.suspicious(labels, schema.labels, oof) if oof is not None else None
            insight.record(project, name, len(labels), meta["metrics"], rows, suspects, meta["created_at"])
            return len(rows)
        self._report(project, name, write)

    @staticmethod
    def _report(project: Project, name: str, write: Callable[[], int]) -> None:
        """Run `write` (it writes a version's report files and returns how many pool tasks it
        scored); a failure costs the report, never the version."""
        started = time.perf_counter()
        try:
            scored = write()
        except Exception as exc:  # noqa: BLE001
            log.warning("project %s: %s has no report data: %s", project.id, name, public_error(exc), exc_info=True)
            return
        log.info("project %s: %s scored %d unlabeled tasks for the report in %.2f s", project.id, name, scored,
                 time.perf_counter() - started)

    def _fit_questions(self, project: Project, schema: Schema, record: Dict) -> Callable[[], None]:
        """A version with one model line per question (`question_training`)."""
        labels = self.training_labels(project, schema)
        digest = self.fingerprint(schema, labels)
        if self._unchanged(project, digest, record):
            return _nothing
        tuned = fine_tunes(schema, self.train_config)
        if self.settings.train_mode == "finetune" and not tuned:
            log.info("project %s: several questions train in head mode, on the shared frozen embeddings (a fine-tuned "
                     "body per question would multiply the version's size and the encoding by the questions)",
                     project.id)
        started = time.perf_counter()
        pool = project.store.unlabeled()  # the prior's refinement and the report's sample read it
        pool_emb = self.models.encoder.embed([text for _, text in pool]) if pool and self.settings.label_prior else None
        fit = fit_questions(schema, labels, self.models.encoder, self.train_config, self.settings.min_labels,
                            self.models.label_prior, pool_emb)
        if fit.models is None:
            reasons = "; ".join(f"{name}: {m['reason']}" for name, m in fit.metrics.items())
            record.update(status="skipped", reason=f"no question can be trained yet ({reasons})")
            log.info("project %s: %s", project.id, record["reason"])
            return _nothing
        encoder = self.models.encoder
        meta = {
            "project": project.id, "mode": "finetune" if tuned else "head",
            "base_model": self.settings.baseline_model_name,
            "encoder": {"name": self.settings.baseline_model_name, "id": encoder.identity, "dim": encoder.dim},
            "fingerprint": digest, "labels": list(schema.labels), "questions": [q.from_name for q in schema.questions],
            "n_labels": len(labels), "annotation_ids": [lb.annotation_id for lb in labels],
            "metrics": summary(fit.metrics), "train_seconds": round(time.perf_counter() - started, 3),
            "created_at": time.time(),
        }
        name = project.registry.publish(fit.models.save, meta)
        self.served.serve(project, name, fit.models)
        record.update(status="published", version=name, n_labels=len(labels))
        log.info("project %s: published %s (%d labels; per question: %s)", project.id, name, len(labels), fit.metrics)
        return lambda: self._report(project, name, lambda: question_insight.record(
            project, name, fit.models, schema, labels, fit.out_of_fold, meta, pool, self.settings.num_draws,
            self.settings.heuristic, self.settings.score_mode, np.random.default_rng(self.settings.seed)))

    @staticmethod
    def _unchanged(project: Project, digest: str, record: Dict) -> bool:
        """The current version was trained on exactly this input (`fingerprint`): the run is
        recorded as skipped."""
        current = project.registry.current()
        if current is None or project.registry.meta(current).get("fingerprint") != digest:
            return False
        record.update(status="skipped", reason=f"nothing changed since {current}: same labels, classes and encoder")
        log.info("project %s: %s", project.id, record["reason"])
        return True

    @staticmethod
    def training_labels(project: Project, schema: Schema) -> List[Label]:
        """The stored labels that answer a question of the config, by annotation id: the same
        labels always train in the same order (a sync re-stamps their times)."""
        stored = project.store.all()
        usable = single_labels(stored, schema, schema.first) if schema.simple else [
            lb for lb in stored if decode(schema, lb.label) is not None]
        return sorted(usable, key=lambda lb: lb.annotation_id)

    def fingerprint(self, schema: Schema, labels: Sequence[Label]) -> str:
        """Equal for two runs that would learn the same thing: labels, classes, encoder, recipe.
        Not the unlabeled pool: it grows whenever a push or Label Studio asks for predictions,
        and a version no label asked for only makes a twin of the current one. Several questions
        train as head mode does unless `fine_tunes`, so only what they use counts; which of them
        train depends on MIN_LABELS, so it counts too."""
        if schema.simple:
            recipe = repr(sorted(asdict(self.train_config).items()))
            recipe += FINETUNE_RECIPE if self.settings.train_mode == "finetune" else ""
        else:
            tuned = fine_tunes(schema, self.train_config)
            config = self.train_config if tuned else head_config(self.train_config)
            recipe = repr(sorted(asdict(config).items())) + QUESTIONS_RECIPE + f" min_labels={self.settings.min_labels}"
            recipe += multilabel_finetune.RECIPE if tuned else ""
        classes = "\x1f".join(schema.labels) if schema.simple else repr(schema.classes)
        if self.settings.label_prior:
            classes += repr(schema.descriptions if schema.simple else [q.descriptions for q in schema.questions])
        return fingerprint(labels, classes, self.models.encoder.identity, recipe)


def _nothing() -> None:
    return None
