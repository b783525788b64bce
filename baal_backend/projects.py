"""The project table: the projects this process knows, and every write to their state.

One `ProjectTable` per engine. A project enters the table with its first state on disk (a read,
or a refused config, leaves nothing behind); it leaves when its state goes to the trash, and
then every part of the engine that keeps something per project forgets it (`on_forget`).
A write that fails names MODEL_DIR (`StateError`); an unwritable MODEL_DIR is a `problem`
(`/health`) while predictions go on.
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
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .events import Events
from .labels import Label, MergeResult
from .project import Project, Trash
from .registry import UNTRAINED
from .schema import Schema, SchemaError, parse_label_config
from .settings import Settings

log = logging.getLogger(__name__)


class StateError(RuntimeError):
    """The backend cannot write its state (MODEL_DIR); the message says what to fix."""


class Refused(RuntimeError):
    """The engine declines a request it could carry out (the message says why): e.g. deleting a
    project that Label Studio says still exists."""


class ProjectTable:
    """Projects by id, their label config and labels, and their way to the trash.

    `retrain(project_id)` is called when a project's classes change."""

    def __init__(self, settings: Settings, events: Events, retrain: Callable[[str], object]):
        self.settings = settings
        self.events = events
        self._retrain = retrain
        self._projects: Dict[str, Project] = {}
        self._lock = threading.RLock()
        self._forgetters: List[Callable[[Project], None]] = []
        self.problems: Dict[str, str] = {}  # what /health lists, by key ("model_dir", "reconcile:<project>")
        self.check_model_dir()
        self.instance = settings.instance_name or instance_id(settings)
        self.trash = Trash(settings.model_dir, settings.trash_days)
        self.purge_trash()

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

    def _known(self) -> List[Project]:
        """The projects of the table that still have state."""
        with self._lock:
            projects = list(self._projects.values())
        return [p for p in projects if p.exists]

    def current_version(self, project_id: str) -> str:
        return self.project(project_id).registry.current() or UNTRAINED

    def current_versions(self) -> Dict[str, str]:
        """{project: current version} of the projects with state this process knows."""
        return {p.id: p.registry.current() or UNTRAINED for p in self._known()}

    def failed_runs(self) -> Dict[str, Dict]:
        """Projects known to this process whose last run failed."""
        return {p.id: p.last_run for p in self._known() if p.last_run.get("status") == "failed"}

    def check_model_dir(self) -> None:
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

    @contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Turn a failed write of state into a `StateError` that names MODEL_DIR."""
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            self.check_model_dir()
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
        widest = max(schema.questions, key=lambda q: len(q.labels))
        if len(widest.labels) > self.settings.max_choices:
            raise SchemaError(f'<Choices name="{widest.from_name}"> has {len(widest.labels)} choices; this backend '
                              f"serves at most {self.settings.max_choices} (MAX_CHOICES)")
        try:
            with self.writing("store the label config"):
                changed = project.save_label_config(label_config)
        except StateError as exc:  # predictions still work from the config in memory
            log.error("project %s: %s", project_id, exc)
            return schema
        if changed and stored is not None and _classes(stored) != schema.classes:
            log.info("project %s: the label config's classes changed; retraining", project_id)
            self._retrain(project_id)
        return schema

    # --- labels ---------------------------------------------------------------------------
    def store_labels(self, project_id: str, labels: Sequence[Label]) -> Tuple[int, bool]:
        """Store labels durably; returns how many were written (late events are not) and whether
        the store was empty before (worth a sync)."""
        project = self.project(project_id)
        with self.writing("store the label"):
            was_empty = project.label_count() == 0
            return project.store.upsert(labels), was_empty

    def delete_labels(self, project_id: str, annotation_ids: Sequence[int], emptied_at: Optional[float] = None) -> int:
        """Remove labels: deleted annotations, or (`emptied_at`, see `LabelStore.delete`) emptied ones."""
        project = self.project(project_id)
        with self.writing("delete the label"):
            return project.store.delete(annotation_ids, emptied_at) if project.exists else 0

    def delete_tasks(self, project_id: str, task_ids: Sequence[int]) -> int:
        """Forget the labels of deleted tasks; returns how many labels went."""
        project = self.project(project_id)
        with self.writing("delete the tasks' labels"):
            return project.store.delete_tasks(task_ids) if project.exists else 0

    def merge_labels(self, project_id: str, labels: Sequence[Label], started: float) -> MergeResult:
        """Apply a full read of the labels' source, begun at `started` (see `LabelStore.merge`)."""
        with self.writing("store the synced labels"):
            return self.project(project_id).store.merge(labels, started)

    # --- the trash ------------------------------------------------------------------------
    def delete_project(self, project_id: str) -> bool:
        """Move a project Label Studio deleted into the trash, whole (restorable for TRASH_DAYS);
        False when there was nothing. `Refused` when a listener (the Label Studio link) says the
        project still exists or cannot confirm it is gone: nothing moves then."""
        project = self.project(project_id)
        if not project.exists:
            return False
        objections = self.events.objections("deleting", project_id)
        if objections:
            raise Refused("; ".join(objections))
        return self.trash_project(project, "deleted in Label Studio")

    def trash_project(self, project: Project, why: str) -> bool:
        """Move a project's state into the trash (restorable for TRASH_DAYS) and forget it here."""
        with project.training_lock() as held:
            if not held:
                return False
            with self.writing("move the project to the trash"):
                entry = self.trash.put(project)
            log.warning("project %s: %s; its labels and versions are in the trash (%s) for %g days: `python -m "
                        "baal_backend restore --project %s` brings them back", project.id, why, entry.path,
                        self.settings.trash_days, project.id)
        with self._lock:
            self._projects.pop(project.id, None)
            for key in [k for k in self.problems if k.partition(":")[2] == project.id]:
                self.problems.pop(key, None)
        for forget in self._forgetters:
            forget(project)
        self.purge_trash()
        return True

    def on_forget(self, forget: Callable[[Project], None]) -> None:
        """Call `forget(project)` when a project leaves the table (its state went to the trash)."""
        self._forgetters.append(forget)

    def purge_trash(self) -> None:
        """Delete the trash entries older than TRASH_DAYS; a failure is logged, never raised."""
        try:
            self.trash.purge()
        except OSError as exc:
            log.error("cannot purge the trash in MODEL_DIR: %s", exc.strerror or exc)


def instance_id(settings: Settings) -> str:
    """This backend's name among others on the same Label Studio project: made once per
    MODEL_DIR (replicas and workers sharing it are one backend), kept in `instance.json`.
    A MODEL_DIR that cannot be written gets a name from its path, stable across restarts."""
    path = settings.model_dir / "instance.json"
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
        return hashlib.sha256(str(settings.model_dir.resolve()).encode()).hexdigest()[:6]


def _classes(config: str) -> Optional[Tuple]:
    try:
        return parse_label_config(config).classes
    except SchemaError:
        return None
