"""The engine: projects, their labels, versions and models, behind a few plain methods.

Nothing here knows Label Studio: `label_studio_baal_hf.py` translates its JSON, and the Label
Studio link (`studio_link`) subscribes to what the engine announces (`events`). One `Engine` per
process serves every project; projects share only the loaded base encoder.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import acquisition, cold_start, insight, trainer_process
from .encoder import Encoder
from .events import Events
from .hf import is_finetuned_for, load_classifier, load_tokenizer, match_labels
from .jobs import TrainingCoordinator
from .labels import Label, MergeResult, fingerprint
from .logs import public_error
from .model import Classifier, TransformerClassifier, TunedClassifier, load_classifier_dir
from .prior import LabelPrior, better_than_chance
from .project import Project, Trash
from .registry import UNTRAINED
from .schema import Schema, SchemaError, parse_label_config
from .settings import Settings
from .training import FINETUNE_RECIPE, TrainConfig, fit_finetune_with_quality, fit_head, head_config

log = logging.getLogger(__name__)

IDENTITY = "identity.json"  # per project: {"created": Label Studio's creation time, epoch seconds}
PREDICT_CHUNK = 2048  # texts per MC-Dropout pass in /predict
PRIOR_CACHE = 64  # label-name priors kept (one per set of choices)
POOL_TEXT_CHARS = 2000  # of each pool text kept: more than the encoder reads (MAX_LENGTH tokens)


class StateError(RuntimeError):
    """The backend cannot write its state (MODEL_DIR); the message says what to fix."""


class Refused(RuntimeError):
    """The engine declines a request it could carry out (the message says why): e.g. deleting a
    project that Label Studio says still exists."""


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

    def best(self, i: int) -> Tuple[str, float]:
        return self.labels[int(self.best_index[i])], float(self.best_probability[i])


class Engine:
    """Everything the HTTP layer asks for, by project id."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.events = Events()
        if settings.redis_url:
            from .rq_runner import RedisTrainingQueue

            self.jobs = RedisTrainingQueue(settings.redis_url, settings.rq_queue, settings.model_dir / "projects")
        else:
            self.jobs = TrainingCoordinator(self.train)
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
        self._projects: Dict[str, Project] = {}
        # the models kept in memory, least recently used first, MAX_LOADED_MODELS of each kind:
        # projects serving a loaded version, and the base checkpoint's classifiers (per classes)
        self._loaded: "OrderedDict[Project, None]" = OrderedDict()
        self._loaded_lock = threading.Lock()
        self._base: "OrderedDict[Tuple[str, ...], Optional[Classifier]]" = OrderedDict()
        self._priors: "OrderedDict[Tuple, LabelPrior]" = OrderedDict()
        self._verdicts: Dict[str, Tuple[Tuple, bool]] = {}  # project -> (its labels' key, prior beats chance)
        self._refused: Dict[Tuple[str, str], str] = {}  # (project, version) -> why it is not served
        self._identities: Dict[str, int] = {}  # project -> its creation time in Label Studio, checked
        self._encoder: Optional[Encoder] = None
        self._lock = threading.RLock()  # the project table
        self._model_lock = threading.RLock()  # loading shared models
        self._rng = np.random.default_rng()
        self.problems: Dict[str, str] = {}
        self._check_model_dir()
        self.instance = settings.instance_name or self._instance_id()
        self.trash = Trash(settings.model_dir, settings.trash_days)
        self._purge_trash()

    # --- shared resources -------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        with self._model_lock:  # not self._lock: loading takes a while, and webhooks need projects meanwhile
            if self._encoder is None:
                self._encoder = Encoder(self.settings.baseline_model_name, max_length=self.settings.max_length)
            return self._encoder

    def project(self, project_id: str) -> Project:
        """The project's state. Only projects with state on disk are kept in memory: requests
        for unknown ids (a read, a refused config) leave nothing behind, here or on disk."""
        with self._lock:
            project = self._projects.get(project_id)
            if project is None:
                root = self.settings.model_dir / "projects" / project_id
                project = Project(project_id, root, self.settings.keep_versions)
                if project.exists:
                    self._projects[project_id] = project
            return project

    def current_versions(self) -> Dict[str, str]:
        """{project: current version} of the projects with state this process knows."""
        with self._lock:
            projects = list(self._projects.values())
        return {p.id: p.registry.current() or UNTRAINED for p in projects if p.exists}

    def _check_model_dir(self) -> None:
        """MODEL_DIR must be writable; if not, say so in the log and in /health, and keep serving."""
        root = self.settings.model_dir / "projects"
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
                pass
            self.problems.pop("model_dir", None)
        except OSError as exc:
            self.problems["model_dir"] = (
                f"MODEL_DIR is not writable ({exc.strerror or exc}): labels cannot be stored and no "
                "version can be trained; predictions use what is already there"
            )
            log.error("%s", self.problems["model_dir"])

    def _instance_id(self) -> str:
        """This backend's name among others on the same Label Studio project: made once per
        MODEL_DIR (replicas and workers sharing it are one backend), kept in `instance.json`.
        A MODEL_DIR that cannot be written gets a name from its path, stable across restarts."""
        path = self.settings.model_dir / "instance.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))["id"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        made = path.with_name(f".instance-{secrets.token_hex(8)}.json")
        try:
            made.write_text(json.dumps({"id": secrets.token_hex(3)}), encoding="utf-8")
            try:
                os.link(made, path)  # atomic and never replaces: replicas starting at once agree
            except FileExistsError:
                pass
            finally:
                made.unlink()
            return json.loads(path.read_text(encoding="utf-8"))["id"]
        except (OSError, ValueError, KeyError):
            return hashlib.sha256(str(self.settings.model_dir.resolve()).encode()).hexdigest()[:6]

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a failed write of state into a `StateError` that names MODEL_DIR."""
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            self._check_model_dir()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)  # no paths
            raise StateError(f"cannot {what}: {reason}; is MODEL_DIR writable?") from exc

    # --- label config ---------------------------------------------------------------------
    def schema(self, project_id: str, label_config: Optional[str] = None, authoritative: bool = True) -> Schema:
        """Parse the project's label config (raising `SchemaError` before anything is stored);
        without one, use the stored one. A changed set of classes queues a retrain.

        `authoritative=False` (annotation webhooks: they carry the config as it was when the
        annotation was saved) only fills in a project that has no config yet, so a late webhook
        never reverts an edit that /setup, /predict or PROJECT_UPDATED brought."""
        project = self.project(project_id)
        stored = project.label_config
        if not label_config or (not authoritative and stored is not None):
            if stored is None:
                raise SchemaError(f"project {project_id} has no label config yet: connect it in Label Studio (/setup)")
            return parse_label_config(stored)
        schema = parse_label_config(label_config)
        if len(schema.labels) > self.settings.max_choices:
            raise SchemaError(f"{len(schema.labels)} choices; this backend serves at most {self.settings.max_choices} "
                              "(MAX_CHOICES)")
        try:
            with self._writing("store the label config"):
                changed = project.save_label_config(label_config)
        except StateError as exc:  # predictions still work from the config in memory
            log.error("project %s: %s", project_id, exc)
            return schema
        if changed and stored is not None and _classes(stored) != schema.labels:
            log.info("project %s: the label config's classes changed; retraining", project_id)
            self.request_training(project_id)
        return schema

    # --- prediction ---------------------------------------------------------------------
    def current_version(self, project_id: str) -> str:
        return self.project(project_id).registry.current() or UNTRAINED

    def _base_classifier(self, labels: Tuple[str, ...]) -> Optional[Classifier]:
        """The base model as is, when it is a fine-tuned checkpoint that knows every class (the
        last MAX_LOADED_MODELS sets of classes kept loaded)."""
        with self._model_lock:
            if labels in self._base:
                self._base.move_to_end(labels)
            else:
                base = self.settings.baseline_model_name
                clf = None
                if is_finetuned_for(base, labels):
                    model = load_classifier(base, labels, seed=self.settings.seed)
                    clf = TransformerClassifier(model, load_tokenizer(base), self.settings.max_length)
                self._base[labels] = clf
                while len(self._base) > self.settings.max_loaded_models:
                    self._base.popitem(last=False)
            return self._base[labels]

    def classifier(self, project_id: str) -> Tuple[str, Optional[Classifier]]:
        """The newest published version that fits the current encoder, loaded once and reloaded
        when it changes; (UNTRAINED, None) before the first version or when it does not fit.
        Only the MAX_LOADED_MODELS projects used last keep theirs loaded (`_used`)."""
        project = self.project(project_id)
        with project.lock:
            for _ in range(3):  # the version can vanish (pruned elsewhere) or turn out broken: next one
                name = project.registry.current()
                if name is None:
                    return UNTRAINED, None
                if project.loaded is not None and project.loaded[0] == name:
                    self._used(project)
                    return project.loaded
                why = self._refused.get((project_id, name)) or self._misfit(project, name)
                if why:
                    return UNTRAINED, None
                project.registry.pin(name)
                try:
                    clf = load_classifier_dir(project.registry.path(name), self.encoder, self.settings.max_length)
                except FileNotFoundError:  # pruned between reading the pointer and loading
                    project.registry.unpin(name)
                    continue
                except Exception as exc:  # noqa: BLE001 - a broken version must not break /predict
                    project.registry.unpin(name)
                    why = f"{name} cannot be loaded ({public_error(exc)[:200]})"
                    log.warning("project %s: %s; serving the previous version and retraining", project_id, why)
                    project.registry.mark_broken(name, why)
                    self._refused[(project_id, name)] = why
                    self.request_training(project_id)
                    continue
                self._serve(project, name, clf)
                project.registry.unpin(name)  # the load's pin: serving holds its own
                return name, clf
        return UNTRAINED, None

    def _serve(self, project: Project, name: str, clf: Classifier) -> None:
        """Serve `clf` as the project's version `name`, pinned (never pruned) while loaded."""
        with project.lock:
            project.registry.pin(name)
            if project.loaded is not None:
                project.registry.unpin(project.loaded[0])
            project.loaded = (name, clf)
        self._used(project)

    def _used(self, project: Project) -> None:
        """Mark the project's loaded version as just used, and unload (unpinned) the least
        recently used others beyond MAX_LOADED_MODELS: they load from disk on their next use.
        A project whose lock is taken this instant (loading) is passed over: never a wait for
        another project's lock, so never a deadlock."""
        with self._loaded_lock:
            self._loaded[project] = None
            self._loaded.move_to_end(project)
            for victim in list(self._loaded)[:-1]:
                if len(self._loaded) <= self.settings.max_loaded_models:
                    break
                if not victim.lock.acquire(blocking=False):
                    continue
                try:
                    if victim.loaded is not None:
                        victim.registry.unpin(victim.loaded[0])
                        victim.loaded = None
                    del self._loaded[victim]
                finally:
                    victim.lock.release()

    def _misfit(self, project: Project, name: str) -> Optional[str]:
        """Why version `name` must not be served on the current encoder (None when it fits).
        A misfit is logged once and queues a retrain on the current encoder."""
        try:
            meta = project.registry.meta(name)
        except FileNotFoundError:
            return None  # vanished: the caller re-reads the current version
        trained_on = meta.get("encoder")
        if trained_on is None:  # a version from before encoder identities: its model's name must match
            if meta.get("base_model") == self.settings.baseline_model_name:
                return None
            trained_on = {"name": meta.get("base_model")}
        elif trained_on.get("id") == self.encoder.identity:
            return None
        return self._refuse(project, name, (
            f"{name} was trained on encoder {trained_on.get('name')!r} (dim {trained_on.get('dim', '?')}), not "
            f"the current {self.settings.baseline_model_name!r} (dim {self.encoder.dim})"
        ))

    def _refuse(self, project: Project, name: str, why: str) -> str:
        """Never serve version `name` again in this process: log why once, queue a retrain."""
        why = f"{why}; serving the untrained rule until it is retrained"
        self._refused[(project.id, name)] = why
        log.warning("project %s: %s", project.id, why)
        self.request_training(project.id)
        return why

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
        version, clf = self.classifier(project_id)
        if clf is None:
            clf = self._base_classifier(schema.labels)
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
            scores[part] = acquisition.prediction_scores(probs, self.settings.heuristic, self.settings.score_mode, self._rng)
        return Predictions(version, schema.labels, best_index, best_probability, scores)

    def remember_tasks(self, project_id: str, task_ids: Sequence[object], texts: Sequence[str]) -> None:
        """Keep the tasks Label Studio asked about: the pool the learner refines its prior on.
        Only for a project that has state (a read never creates it); a failing write costs the
        pool a few texts, never the prediction."""
        project = self.project(project_id)
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
        emb = self.encoder.embed(texts)
        n = len(texts)
        prior = self.label_prior(schema)
        scores = cold_start.diversity_scores(emb, self.settings.min_labels, self.settings.seed)
        if self.settings.score_mode == "uncertainty":
            scores = 1.0 - scores
        if prior is None:
            return Predictions(UNTRAINED, schema.labels, np.zeros(n, dtype=np.int64), np.zeros(n), scores, prefill=False)
        probs = prior.probabilities(emb)
        best = probs.argmax(1)
        return Predictions(UNTRAINED, schema.labels, best, probs[np.arange(n), best], scores,
                           prefill=self._prior_beats_chance(project_id, schema, prior))

    def label_prior(self, schema: Schema) -> Optional[LabelPrior]:
        """The label-name prior of a config (LABEL_PRIOR), built once per set of choices (built
        outside the lock: a thousand choices take seconds; the last PRIOR_CACHE kept)."""
        if not self.settings.label_prior:
            return None
        key = (schema.labels, schema.descriptions)
        with self._lock:
            if key in self._priors:
                self._priors.move_to_end(key)
                return self._priors[key]
        prior = LabelPrior.of(self.encoder, schema.labels, schema.descriptions)
        with self._lock:
            self._priors[key] = prior
            while len(self._priors) > PRIOR_CACHE:
                self._priors.popitem(last=False)
        return prior

    def _prior_beats_chance(self, project_id: str, schema: Schema, prior: LabelPrior) -> bool:
        """Do the project's stored labels show the prior is better than guessing? One label per
        task (the newest 500 tasks), right in at least 2 classes, and a one-sided binomial test
        at 1% against 1/classes. With no labels nobody knows: no pre-filled class. The verdict is
        kept until the label count changes."""
        project = self.project(project_id)
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
            right = prior.logits(self.encoder.embed([lb.text for lb in labels])).argmax(1) == y
            verdict = len(set(y[right])) >= 2 and better_than_chance(int(right.sum()), len(y), len(schema.labels))
        with self._lock:
            self._verdicts[project_id] = (key, verdict)
        return verdict

    # --- labels ---------------------------------------------------------------------------
    def store_labels(self, project_id: str, labels: Sequence[Label]) -> Tuple[int, bool]:
        """Store labels durably; returns how many were written (late events are not) and whether
        the store was empty before (worth a sync)."""
        project = self.project(project_id)
        with self._writing("store the label"):
            was_empty = project.label_count() == 0
            return project.store.upsert(labels), was_empty

    def delete_labels(self, project_id: str, annotation_ids: Sequence[int], emptied_at: Optional[float] = None) -> int:
        """Remove labels: deleted annotations, or (`emptied_at`, see `LabelStore.delete`) emptied ones."""
        project = self.project(project_id)
        with self._writing("delete the label"):
            return project.store.delete(annotation_ids, emptied_at) if project.exists else 0

    def delete_tasks(self, project_id: str, task_ids: Sequence[int]) -> int:
        """Forget the labels of deleted tasks; returns how many labels went."""
        project = self.project(project_id)
        with self._writing("delete the tasks' labels"):
            return project.store.delete_tasks(task_ids) if project.exists else 0

    def merge_labels(self, project_id: str, labels: Sequence[Label], started: float) -> MergeResult:
        """Apply a full read of the labels' source, begun at `started` (see `LabelStore.merge`)."""
        with self._writing("store the synced labels"):
            return self.project(project_id).store.merge(labels, started)

    def delete_project(self, project_id: str) -> bool:
        """Move a project Label Studio deleted into the trash, whole (restorable for TRASH_DAYS);
        False when there was nothing. `Refused` when a listener (the Label Studio link) says the
        project still exists or cannot confirm it is gone: nothing moves then."""
        project = self.project(project_id)
        if not project.exists:
            return False
        objections = self._objections("deleting", project_id)
        if objections:
            raise Refused("; ".join(objections))
        return self._trash(project, "deleted in Label Studio")

    def _objections(self, hook: str, *args: object) -> List[str]:
        """What the listeners hold against an act (`hook` appends its reasons to the list it is
        given); a listener that raised objects too."""
        objections: List[str] = []
        if not self.events.emit(hook, *args, objections):
            objections.append(f"the {hook} check failed (see the log)")
        return objections

    def _trash(self, project: Project, why: str) -> bool:
        """Move a project's state into the trash (restorable for TRASH_DAYS) and forget it here."""
        with project.training_lock() as held:
            if not held:
                return False
            with self._writing("move the project to the trash"):
                entry = self.trash.put(project)
            log.warning("project %s: %s; its labels and versions are in the trash (%s) for %g days: `python -m "
                        "baal_backend restore --project %s` brings them back", project.id, why, entry.path,
                        self.settings.trash_days, project.id)
        with self._lock:
            self._projects.pop(project.id, None)
            self._verdicts.pop(project.id, None)
            self._identities.pop(project.id, None)
            self.problems = {k: v for k, v in self.problems.items() if k.partition(":")[2] != project.id}
            self._refused = {k: v for k, v in self._refused.items() if k[0] != project.id}
        with self._loaded_lock:
            self._loaded.pop(project, None)
        self._purge_trash()
        return True

    def identify(self, project_id: str, created: Optional[int], confirmed: bool = False) -> None:
        """Label Studio names a project by its id and creation time (`"3.1700000000"` in /setup
        and /predict, `created_at` in its API). The same id with another creation time is
        another project (Label Studio reinstalled, a second instance): it must not inherit the
        stored one's labels and versions, which go to the trash (restorable). State from before
        identities, or made before its first stamped request, takes the first time it is given.
        A time from a request (not `confirmed` by Label Studio itself) is checked by the
        listeners first (`identifying`: the Label Studio link asks Label Studio); an objection
        leaves everything as it is."""
        if created is None:
            return
        with self._lock:
            if self._identities.get(project_id) == created:
                return
        project = self.project(project_id)
        if not project.exists:
            return
        known = project.read_json(IDENTITY).get("created")
        if known != created and not confirmed:
            objections = self._objections("identifying", project_id, created)
            if objections:
                log.warning("project %s: a request names it as created at %s; not taken (%s)", project_id, created,
                            "; ".join(objections))
                return
        if known is None:
            with self._writing("store the project's identity"):
                project.write_json(IDENTITY, {"created": created})
        elif known != created:
            self._trash(project, f"Label Studio now names another project {project_id} (created at {created}, the "
                                 f"stored one at {known}: a reinstalled or second Label Studio)")
            return
        with self._lock:
            self._identities[project_id] = created

    def _purge_trash(self) -> None:
        """Delete the trash entries older than TRASH_DAYS; a failure is logged, never raised."""
        try:
            self.trash.purge()
        except OSError as exc:
            log.error("cannot purge the trash in MODEL_DIR: %s", exc.strerror or exc)

    # --- training -------------------------------------------------------------------------
    def request_training(self, project_id: str, sync: bool = False) -> str:
        return self.jobs.request(project_id, sync=sync)

    def train(self, project_id: str, sync: bool) -> None:
        """One training run (on a job thread, or in the RQ worker): (sync,) read labels, fit,
        publish, announce."""
        project = self.project(project_id)
        record: Dict = {}
        # everything under the project's lock, announcements included: a PROJECT_DELETED waiting
        # for the lock never sees a run write into (or push from) a project it removed
        with project.training_lock() as held:
            if not held:  # nothing stored (never set up, or deleted): nothing to train, nothing to create
                log.info("project %s: no state, no training run", project_id)
                return
            started = time.perf_counter()
            log.info("project %s: training run started%s", project_id, " (sync first)" if sync else "")
            try:
                project.registry.remove_strays()
                schema = self.schema(project_id)
                self.events.emit("run_starting", project_id, schema, sync, record)
                report = self._fit_and_publish(project, schema, record)
                if record.get("status") == "published":
                    self.events.emit("published", project_id, schema, record["version"], record)
                    report()  # after the push is on its way: the report data waits, Label Studio does not
            except Exception as exc:  # noqa: BLE001 - recorded, reported; the previous version keeps serving
                log.exception("project %s: training run failed", project_id)
                record.update(status="failed", error=public_error(exc))
            seconds = time.perf_counter() - started
            record["seconds"] = round(seconds, 2)
            log.info("project %s: training run ended: %s in %.2fs", project_id, record.get("status"), seconds)
            try:
                record = project.record_run(record)
            except OSError as exc:
                log.error("project %s: cannot record the run in MODEL_DIR: %s", project_id, exc)
            self.events.emit("run_finished", project_id, record, seconds)

    def _fit_and_publish(self, project: Project, schema: Schema, record: Dict) -> Callable[[], None]:
        """Train and publish a version (or record why not); returns what writes its report data."""
        labels = self._training_labels(project, schema)
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
        digest = self.training_fingerprint(schema, labels)
        current = project.registry.current()
        if current is not None and project.registry.meta(current).get("fingerprint") == digest:
            record.update(status="skipped", reason=f"nothing changed since {current}: same labels, classes, encoder and pool")
            log.info("project %s: %s", project.id, record["reason"])
            return _nothing
        started = time.perf_counter()
        y = np.array([schema.labels.index(lb.label) for lb in labels], dtype=np.int64)
        texts, groups = [lb.text for lb in labels], [lb.task_id for lb in labels]
        emb = self.encoder.embed(texts)  # cached per text: this process holds the encoder
        prior = self.label_prior(schema)
        pool_emb = self.encoder.embed([text for _, text in pool]) if prior is not None else None
        # head mode's version; fine-tune mode's warm start (and, in both, the suspicious labels)
        fitted = trainer_process.run(fit_head, emb, y, groups, len(schema.labels), head_config(self.train_config),
                                     prior.prototypes if prior is not None else None, pool_emb)
        metrics, oof = fitted.metrics, fitted.out_of_fold
        fit = metrics.pop("fit")
        log.info("project %s: head fitted on %d labels (and %d class-name prototypes): %d epochs, %d steps, final "
                 "loss %.4f, %.2f s (quality: %s)", project.id, len(labels), fit["labels"] - len(labels), fit["epochs"],
                 fit["steps"], fit["loss"], fit["seconds"], metrics.get("eval"))
        clf: Classifier = fitted.classifier(self.encoder, schema.labels)
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
            "encoder": {"name": self.settings.baseline_model_name, "id": self.encoder.identity, "dim": self.encoder.dim},
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
        self._serve(project, name, clf)
        record.update(status="published", version=name, n_labels=len(labels))
        log.info("project %s: published %s (%d labels, %s)", project.id, name, len(labels), metrics)
        return lambda: self._record_insight(project, name, clf, labels, schema, oof, meta, pool)

    def _record_insight(self, project: Project, name: str, clf: Classifier, labels: Sequence[Label], schema: Schema,
                        oof: Optional[np.ndarray], meta: Dict, pool: Sequence[Tuple[int, str]]) -> None:
        """The version's report files (`insight`); a failure costs the report, never the version."""
        started = time.perf_counter()
        try:
            rows = insight.score_pool(clf, pool, self.settings.num_draws, self.settings.heuristic,
                                      self.settings.score_mode, np.random.default_rng(self.settings.seed))
            suspects = insight.suspicious(labels, schema.labels, oof) if oof is not None else None
            insight.record(project, name, len(labels), meta["metrics"], rows, suspects, meta["created_at"])
        except Exception as exc:  # noqa: BLE001
            log.warning("project %s: %s has no report data: %s", project.id, name, public_error(exc), exc_info=True)
            return
        log.info("project %s: %s scored %d unlabeled tasks for the report in %.2f s", project.id, name, len(rows),
                 time.perf_counter() - started)

    @staticmethod
    def _training_labels(project: Project, schema: Schema) -> List[Label]:
        """The stored labels of the config's classes, by annotation id: the same labels always
        train in the same order (a sync re-stamps their times)."""
        return sorted((lb for lb in project.store.all() if lb.label in schema.labels), key=lambda lb: lb.annotation_id)

    def training_fingerprint(self, schema: Schema, labels: Sequence[Label]) -> str:
        """Equal for two runs that would learn the same thing: labels, classes, encoder, recipe.
        Not the unlabeled pool: it grows whenever a push or Label Studio asks for predictions,
        and a version no label asked for only makes a twin of the current one."""
        recipe = repr(sorted(asdict(self.train_config).items()))
        if self.settings.train_mode == "finetune":
            recipe += FINETUNE_RECIPE
        classes = "\x1f".join(schema.labels) + (repr(schema.descriptions) if self.settings.label_prior else "")
        return fingerprint(labels, classes, self.encoder.identity, recipe)

    def resume(self) -> List[str]:
        """At start-up: queue a run for every project whose stored labels, classes or encoder
        differ from what its current version was trained on (a run lost to a kill or a crash,
        labels stored while no run could finish). Returns the projects queued. Listeners start
        their background work first (`serving`): this runs in the process that serves."""
        self.events.emit("serving")
        root = self.settings.model_dir / "projects"
        queued = []
        for path in sorted(root.iterdir()) if root.is_dir() else []:
            if path.name.startswith(".") or not path.is_dir():  # temp and trash entries
                continue
            project = self.project(path.name)  # known from now on: /health reports its failed runs
            try:
                if project.label_count() < self.settings.min_labels or project.label_config is None:
                    continue
                schema = self.schema(project.id)
                labels = self._training_labels(project, schema)
                current = project.registry.current()
                trained = project.registry.meta(current).get("fingerprint") if current else None
                if len(labels) >= self.settings.min_labels and trained != self.training_fingerprint(schema, labels):
                    queued.append(project.id)
                    self.request_training(project.id)
            except Exception:  # noqa: BLE001 - one broken project never stops the others
                log.exception("project %s: cannot check whether it needs training", path.name)
        if queued:
            log.info("resuming training for projects %s (labels newer than their current version)", ", ".join(queued))
        return queued

    # --- reading state ---------------------------------------------------------------------
    def versions(self, project_id: str) -> List[Dict]:
        """Published versions, oldest first, with what they were trained on and their quality."""
        registry = self.project(project_id).registry
        out = []
        for name in registry.list():
            meta = registry.meta(name)
            row = {k: meta.get(k) for k in ("version", "n_labels", "metrics", "mode", "created_at", "train_seconds")}
            if (project_id, name) in self._refused:
                row["not_served"] = self._refused[(project_id, name)]
            out.append(row)
        return out

    def failed_runs(self) -> Dict[str, Dict]:
        """Projects known to this process whose last run failed."""
        with self._lock:
            projects = list(self._projects.values())
        return {p.id: p.last_run for p in projects if p.exists and p.last_run.get("status") == "failed"}

    def shutdown(self, grace: float) -> bool:
        """Stop taking training requests and wait up to `grace` seconds for running ones; False
        if one is still running (it will be resumed at the next start). Listeners stop their
        background work first (`stopping`)."""
        self.events.emit("stopping")
        return self.jobs.shutdown(grace)


def _classes(config: str) -> Optional[Tuple[str, ...]]:
    try:
        return parse_label_config(config).labels
    except SchemaError:
        return None


def _nothing() -> None:
    return None


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
