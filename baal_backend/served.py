"""Which version each project serves, loaded once and reloaded when it changes.

A version is served only on its own encoder, and only if it loads: a misfit or a broken one is
refused (once per process, logged, shown in `/versions`), the untrained rule serves, and a retrain
is queued. At most MAX_LOADED_MODELS projects keep their version loaded (least recently used
unloaded; it reloads from disk on its next use); a loaded version is pinned, never pruned.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple

from .logs import public_error
from .model import Classifier
from .project import Project
from .question_models import load_version
from .projects import ProjectTable
from .registry import UNTRAINED
from .settings import Settings
from .shared_models import SharedModels

log = logging.getLogger(__name__)


class ServedVersions:
    """`retrain(project_id)` is called when a version is refused."""

    def __init__(self, settings: Settings, table: ProjectTable, models: SharedModels,
                 retrain: Callable[[str], object]):
        self.settings = settings
        self.table = table
        self.models = models
        self._retrain = retrain
        self._loaded: "OrderedDict[Project, None]" = OrderedDict()  # serving a loaded version, least recently used first
        self._loaded_lock = threading.Lock()
        self._refused: Dict[Tuple[str, str], str] = {}  # (project, version) -> why it is not served
        table.on_forget(self.forget)

    def classifier(self, project_id: str) -> Tuple[str, Optional[Classifier]]:
        """The newest published version that fits the current encoder, loaded once and reloaded
        when it changes; (UNTRAINED, None) before the first version or when it does not fit.
        Only the MAX_LOADED_MODELS projects used last keep theirs loaded (`_used`)."""
        project = self.table.project(project_id)
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
                    clf = load_version(project.registry.path(name), self.models.encoder,
                                              self.settings.max_length)
                except FileNotFoundError:  # pruned between reading the pointer and loading
                    project.registry.unpin(name)
                    continue
                except Exception as exc:  # noqa: BLE001 - a broken version must not break /predict
                    project.registry.unpin(name)
                    why = f"{name} cannot be loaded ({public_error(exc)[:200]})"
                    log.warning("project %s: %s; serving the previous version and retraining", project_id, why)
                    project.registry.mark_broken(name, why)
                    self._refused[(project_id, name)] = why
                    self._retrain(project_id)
                    continue
                self.serve(project, name, clf)
                project.registry.unpin(name)  # the load's pin: serving holds its own
                return name, clf
        return UNTRAINED, None

    def serve(self, project: Project, name: str, clf: Classifier) -> None:
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
        encoder = self.models.encoder
        trained_on = meta.get("encoder")
        if trained_on is None:  # a version from before encoder identities: its model's name must match
            if meta.get("base_model") == self.settings.baseline_model_name:
                return None
            trained_on = {"name": meta.get("base_model")}
        elif trained_on.get("id") == encoder.identity:
            return None
        return self._refuse(project, name, (
            f"{name} was trained on encoder {trained_on.get('name')!r} (dim {trained_on.get('dim', '?')}), not "
            f"the current {self.settings.baseline_model_name!r} (dim {encoder.dim})"
        ))

    def _refuse(self, project: Project, name: str, why: str) -> str:
        """Never serve version `name` again in this process: log why once, queue a retrain."""
        why = f"{why}; serving the untrained rule until it is retrained"
        self._refused[(project.id, name)] = why
        log.warning("project %s: %s", project.id, why)
        self._retrain(project.id)
        return why

    def versions(self, project_id: str) -> List[Dict]:
        """Published versions, oldest first, with what they were trained on, their quality, and
        why one is not served (`not_served`)."""
        registry = self.table.project(project_id).registry
        out = []
        for name in registry.list():
            meta = registry.meta(name)
            row = {k: meta.get(k) for k in ("version", "n_labels", "metrics", "mode", "created_at", "train_seconds")}
            if (project_id, name) in self._refused:
                row["not_served"] = self._refused[(project_id, name)]
            out.append(row)
        return out

    def forget(self, project: Project) -> None:
        """The project left the table: nothing of it stays loaded or refused here."""
        with self._loaded_lock:
            self._loaded.pop(project, None)
            self._refused = {k: v for k, v in self._refused.items() if k[0] != project.id}
