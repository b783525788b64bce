"""The engine: projects, their labels, versions and models, behind a few plain methods.

Nothing here knows Label Studio's JSON; `label_studio_baal_hf.py` translates. One `Engine` per
process serves every project; projects share only the loaded base encoder.
"""
from __future__ import annotations

import fcntl
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import acquisition, cold_start, studio
from .encoder import Encoder
from .hf import is_finetuned_for, load_classifier, load_tokenizer, match_labels
from .jobs import TrainingCoordinator
from .labels import Label, LabelStore
from .model import Classifier, HeadClassifier, TransformerClassifier, load_classifier_dir
from .registry import UNTRAINED, Registry, atomic_write_text
from .schema import Schema, SchemaError, parse_label_config
from .settings import Settings
from .training import TrainConfig, fit_with_quality

log = logging.getLogger(__name__)

PREDICT_CHUNK = 2048  # texts per MC-Dropout pass in /predict


@dataclass(frozen=True)
class Predictions:
    """What a batch of texts gets: the most probable class (of the MC-averaged prediction), its
    probability, and the score Label Studio sorts by."""

    version: str
    labels: Tuple[str, ...]
    best_index: np.ndarray  # [n] into labels
    best_probability: np.ndarray  # [n]
    scores: np.ndarray  # [n]

    def best(self, i: int) -> Tuple[str, float]:
        return self.labels[int(self.best_index[i])], float(self.best_probability[i])


class Project:
    """One Label Studio project's directory: labels, label config, versions."""

    def __init__(self, project_id: str, root: Path, keep_versions: int):
        self.id = project_id
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.store = LabelStore(root / "labels.sqlite3")
        self.registry = Registry(root, keep=keep_versions)
        self._config_file = root / "label_config.xml"
        self.loaded: Optional[Tuple[str, Classifier]] = None
        self.lock = threading.Lock()
        self.last_run: Dict = {}

    @property
    def label_config(self) -> Optional[str]:
        try:
            return self._config_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def save_label_config(self, config: str) -> None:
        if config != self.label_config:
            atomic_write_text(self._config_file, config)

    @contextmanager
    def training_lock(self) -> Iterator[None]:
        """Exclusive across processes too (gunicorn workers sharing MODEL_DIR)."""
        with open(self.root / "train.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


class Engine:
    """Everything the HTTP layer asks for, by project id."""

    def __init__(self, settings: Settings, client: Optional[studio.LabelStudioClient] = None):
        self.settings = settings
        self.client = client
        if client is None and settings.label_studio_enabled:
            self.client = studio.LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key)
        self.jobs = TrainingCoordinator(self._train)
        self.train_config = TrainConfig(
            mode=settings.train_mode,
            epochs=settings.epochs,
            learning_rate=settings.learning_rate,
            batch_size=settings.batch_size,
            max_length=settings.max_length,
            eval_fraction=settings.eval_fraction,
            num_draws=settings.num_draws,
            seed=settings.seed,
        )
        self._projects: Dict[str, Project] = {}
        self._untrained: Dict[Tuple[str, ...], Tuple[Classifier, bool]] = {}
        self._encoder: Optional[Encoder] = None
        self._lock = threading.RLock()
        self._rng = np.random.default_rng()

    # --- shared resources -------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = Encoder(self.settings.baseline_model_name, max_length=self.settings.max_length)
            return self._encoder

    def project(self, project_id: str) -> Project:
        with self._lock:
            if project_id not in self._projects:
                root = self.settings.model_dir / "projects" / project_id
                self._projects[project_id] = Project(project_id, root, self.settings.keep_versions)
            return self._projects[project_id]

    # --- label config ---------------------------------------------------------------------
    def schema(self, project_id: str, label_config: Optional[str] = None) -> Schema:
        """Parse (and remember) the project's label config; without one, use the stored one."""
        project = self.project(project_id)
        if label_config:
            schema = parse_label_config(label_config)
            project.save_label_config(label_config)
            return schema
        stored = project.label_config
        if stored is None:
            raise SchemaError(f"project {project_id} has no label config yet: connect it in Label Studio (/setup)")
        return parse_label_config(stored)

    # --- prediction ---------------------------------------------------------------------
    def current_version(self, project_id: str) -> str:
        return self.project(project_id).registry.current() or UNTRAINED

    def _untrained_classifier(self, labels: Tuple[str, ...]) -> Tuple[Classifier, bool]:
        """The base model for these labels, and whether it already knows them (a fine-tuned checkpoint)."""
        with self._lock:
            if labels not in self._untrained:
                base = self.settings.baseline_model_name
                knows = is_finetuned_for(base, labels)
                if knows or self.settings.train_mode == "finetune":
                    model = load_classifier(base, labels, seed=self.settings.seed)
                    clf: Classifier = TransformerClassifier(model, load_tokenizer(base), self.settings.max_length)
                else:
                    clf = HeadClassifier.new(self.encoder, labels, seed=self.settings.seed)
                self._untrained[labels] = (clf, knows)
            return self._untrained[labels]

    def classifier(self, project_id: str, schema: Schema) -> Tuple[str, Classifier]:
        """The newest published version of the project, loaded once, reloaded when it changes."""
        project = self.project(project_id)
        with project.lock:
            name = project.registry.current()
            if name is None:
                return UNTRAINED, self._untrained_classifier(schema.labels)[0]
            if project.loaded is None or project.loaded[0] != name:
                clf = load_classifier_dir(project.registry.path(name), self.encoder, self.settings.max_length)
                project.loaded = (name, clf)
            return project.loaded

    def predict(self, project_id: str, schema: Schema, texts: Sequence[str]) -> Predictions:
        """Classes and scores; before a project's first version (and unless the base model is a
        checkpoint that knows the labels) the scores follow the cold-start diversity rule.

        Texts go through in chunks, so memory stays O(texts), not O(texts x classes x draws).
        """
        version, clf = self.classifier(project_id, schema)
        n = len(texts)
        best_index, best_probability, scores = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
        cold = version == UNTRAINED and not self._untrained_classifier(schema.labels)[1]
        for start in range(0, n, PREDICT_CHUNK):
            part = slice(start, min(start + PREDICT_CHUNK, n))
            probs = align(clf.predict_proba(texts[part], self.settings.num_draws), clf.labels, schema.labels)
            mean = probs.mean(-1)
            best_index[part] = mean.argmax(1)
            best_probability[part] = mean[np.arange(len(mean)), best_index[part]]
            if not cold:
                scores[part] = acquisition.prediction_scores(
                    probs, self.settings.heuristic, self.settings.score_mode, self._rng
                )
        if cold:
            scores = cold_start.diversity_scores(self.encoder.embed(texts), self.settings.min_labels, self.settings.seed)
            if self.settings.score_mode == "uncertainty":
                scores = 1.0 - scores
        return Predictions(version, schema.labels, best_index, best_probability, scores)

    # --- labels and training ------------------------------------------------------------------
    def store_labels(self, project_id: str, labels: Sequence[Label]) -> bool:
        """Store labels durably; returns True when the store was empty before (worth a sync)."""
        store = self.project(project_id).store
        was_empty = store.count() == 0
        store.upsert(labels)
        return was_empty

    def delete_labels(self, project_id: str, annotation_ids: Sequence[int]) -> int:
        return self.project(project_id).store.delete(annotation_ids)

    def request_training(self, project_id: str, sync: bool = False) -> str:
        return self.jobs.request(project_id, sync=sync and self.client is not None)

    def _train(self, project_id: str, sync: bool) -> None:
        """One training run: (sync,) read labels, fit, publish. Runs on a job thread."""
        project = self.project(project_id)
        with project.training_lock():
            schema = self.schema(project_id)
            if sync and self.client is not None:
                synced = self.client.labels(project_id, schema)
                project.store.upsert(synced, replace_all=True)
                log.info("project %s: synced %d labels from Label Studio", project_id, len(synced))
            labels = [lb for lb in project.store.all() if lb.label in schema.labels]
            y = np.array([schema.labels.index(lb.label) for lb in labels], dtype=np.int64)
            if len(labels) < self.settings.min_labels or len(np.unique(y)) < 2:
                project.last_run = {
                    "status": "skipped",
                    "reason": f"{len(labels)} labels in {len(np.unique(y))} classes; training needs "
                    f"{self.settings.min_labels} labels in at least 2 classes (MIN_LABELS)",
                }
                log.info("project %s: %s", project_id, project.last_run["reason"])
                return
            started = time.perf_counter()
            texts = [lb.text for lb in labels]
            clf, metrics = fit_with_quality(
                self.encoder, self.settings.baseline_model_name, schema.labels, texts, y, self.train_config
            )
            meta = {
                "project": project_id,
                "mode": self.settings.train_mode,
                "base_model": self.settings.baseline_model_name,
                "labels": list(schema.labels),
                "n_labels": len(labels),
                "annotation_ids": [lb.annotation_id for lb in labels],
                "label_counts": {name: int((y == k).sum()) for k, name in enumerate(schema.labels)},
                "metrics": metrics,
                "train_seconds": round(time.perf_counter() - started, 3),
                "created_at": time.time(),
            }
            name = project.registry.publish(clf.save, meta)
            with project.lock:
                project.loaded = (name, clf)
            project.last_run = {"status": "published", "version": name, "n_labels": len(labels)}
            log.info("project %s: published %s (%d labels, %s)", project_id, name, len(labels), metrics)
        if self.client is not None:
            try:
                project.last_run["pushed"] = self.push_predictions(project_id, schema)
            except Exception:  # Label Studio down or refusing: the version still serves /predict
                log.exception("project %s: pushing predictions of %s to Label Studio failed", project_id, name)

    def push_predictions(self, project_id: str, schema: Schema) -> int:
        """Score the project's unlabeled tasks with the current version, store the predictions in
        Label Studio and make that version the project's, so its sort and sampling use fresh scores.
        """
        tasks = [t for t in self.client.tasks(project_id) if not studio.is_labeled(t)]
        indices, texts = studio.texts_of(tasks, schema, project_id)
        version = self.current_version(project_id)
        if texts:
            preds = self.predict(project_id, schema, texts)
            version = preds.version
            items = studio.predictions_json(schema, preds)
            self.client.import_predictions(project_id, [{"task": tasks[i]["id"], **it} for i, it in zip(indices, items)])
        self.client.set_model_version(project_id, version)
        log.info("project %s: pushed %d predictions of %s to Label Studio", project_id, len(texts), version)
        return len(texts)

    # --- versions ---------------------------------------------------------------------------------
    def versions(self, project_id: str) -> List[Dict]:
        """Published versions, oldest first, with what they were trained on and their quality."""
        registry = self.project(project_id).registry
        out = []
        for name in registry.list():
            meta = registry.meta(name)
            out.append({k: meta.get(k) for k in ("version", "n_labels", "metrics", "mode", "created_at", "train_seconds")})
        return out


def align(probs: np.ndarray, have: Sequence[str], want: Sequence[str]) -> np.ndarray:
    """Reorder probability columns from a model's labels to the label config's (by name).

    Classes the model never knew (the config grew) get probability 0 until the next version.
    """
    if tuple(have) == tuple(want):
        return probs
    out = np.zeros((probs.shape[0], len(want), probs.shape[2]), dtype=probs.dtype)
    for target, source in match_labels(have, want).items():
        out[:, target] = probs[:, source]
    return out
