"""One Label Studio project's state on disk: labels, label config, versions, last run.

Nothing is created by reading: the directory appears with the first write (a label config that
parses, a label), so a refused config or a read-only request for an unknown project leaves no
trace.

A project Label Studio deleted goes to the `Trash`, whole, and can be restored from there
(`python -m baal_backend restore`) until it is older than TRASH_DAYS.
"""
from __future__ import annotations

import fcntl
import json
import logging
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .labels import LabelStore
from .model import Classifier
from .registry import Registry, atomic_write_text

log = logging.getLogger(__name__)

LAST_RUN = "last_run.json"


class Project:
    """`MODEL_DIR/projects/<id>/`: `labels.sqlite3`, `label_config.xml`, `versions/`,
    `current.json`, `last_run.json`, `train.lock`."""

    def __init__(self, project_id: str, root: Path, keep_versions: int):
        self.id = project_id
        self.root = root
        self.registry = Registry(root, keep=keep_versions)
        self._config_file = root / "label_config.xml"
        self._store: Optional[LabelStore] = None
        self._config: Optional[str] = None  # the newest config seen, also when it could not be written
        self.loaded: Optional[Tuple[str, Classifier]] = None  # (version, classifier) being served
        self.lock = threading.RLock()

    @property
    def exists(self) -> bool:
        return self.root.is_dir()

    @property
    def store(self) -> LabelStore:
        """The label store, created on first use (a write is coming)."""
        with self.lock:
            if self._store is None:
                self._store = LabelStore(self.root / "labels.sqlite3")
            return self._store

    def label_count(self) -> int:
        """Stored labels, without creating anything."""
        return self.store.count() if (self._store or (self.root / "labels.sqlite3").exists()) else 0

    @property
    def label_config(self) -> Optional[str]:
        """The stored config (another process may have changed it), else the one seen last."""
        try:
            return self._config_file.read_text(encoding="utf-8")
        except OSError:
            return self._config

    def save_label_config(self, config: str) -> bool:
        """Store the config; True when it differs from the stored one. An OSError leaves the
        config in memory for this process."""
        if config == self.label_config:
            return False
        self._config = config
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self._config_file, config)
        return True

    def read_json(self, name: str) -> Dict:
        """A small state file of the project (`{}` when there is none)."""
        try:
            return json.loads((self.root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_json(self, name: str, data: Dict) -> None:
        """Replace a state file of a project that has state (never recreates a removed one)."""
        atomic_write_text(self.root / name, json.dumps(data))

    @property
    def last_run(self) -> Dict:
        """The outcome of the newest training run (from any process sharing MODEL_DIR)."""
        return self.read_json(LAST_RUN)

    def record_run(self, outcome: Dict) -> Dict:
        outcome = {**outcome, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.write_json(LAST_RUN, outcome)
        return outcome

    @contextmanager
    def training_lock(self) -> Iterator[bool]:
        """Exclusive across processes too (workers and replicas sharing MODEL_DIR). Yields False,
        holding nothing, when the project has no state (or was removed while waiting)."""
        try:
            fh = open(self.root / "train.lock", "w")
        except FileNotFoundError:
            yield False
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield self.exists
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """A non-blocking lock file of the project, exclusive across processes: yields whether it
        is held (False too when the project has no state, and nothing is created then)."""
        try:
            fh = open(self.root / name, "w")
        except FileNotFoundError:
            yield False
            return
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def close(self) -> None:
        with self.lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def move_to(self, place: Path) -> None:
        """Move every file of the project to `place` (call under its training lock)."""
        self.close()
        self.root.rename(place)  # atomic: readers see the whole project or none


class TrashError(RuntimeError):
    """The trash cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class TrashEntry:
    """One deleted project in the trash: `path/project/` holds its files, `path/trashed.json` this."""

    path: Path
    project: str
    root: str  # where it lived, relative to MODEL_DIR
    deleted_at: float

    @property
    def files(self) -> Path:
        return self.path / "project"


class Trash:
    """`MODEL_DIR/trash/`: projects Label Studio deleted, kept `days` days for a `restore`, then
    purged. An unauthenticated webhook can ask for a deletion: it never destroys anything at once."""

    INFO = "trashed.json"

    def __init__(self, model_dir: Path, days: float):
        self.model_dir = Path(model_dir)
        self.path = self.model_dir / "trash"
        self.days = days

    def put(self, project: Project) -> TrashEntry:
        """Move a project's files into the trash (call under its training lock)."""
        now = time.time_ns()
        entry = TrashEntry(self.path / f"{project.root.name}.{now}", project.id,
                           project.root.relative_to(self.model_dir).as_posix(), now / 1e9)
        entry.path.mkdir(parents=True)
        atomic_write_text(entry.path / self.INFO, json.dumps(
            {"project": entry.project, "root": entry.root, "deleted_at": entry.deleted_at}))
        try:
            project.move_to(entry.files)
        except OSError:
            shutil.rmtree(entry.path, ignore_errors=True)
            raise
        return entry

    def entries(self) -> List[TrashEntry]:
        """The restorable projects, newest first."""
        found = []
        for path in self.path.iterdir() if self.path.is_dir() else []:
            try:
                info = json.loads((path / self.INFO).read_text(encoding="utf-8"))
                entry = TrashEntry(path, str(info["project"]), str(info["root"]), float(info["deleted_at"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being purged, or cut off while being made
            if entry.files.is_dir():
                found.append(entry)
        return sorted(found, key=lambda e: e.deleted_at, reverse=True)

    def restore(self, project_id: str) -> Path:
        """Put a project's newest trash entry back where it lived; returns that place."""
        entry = next((e for e in self.entries() if e.project == project_id), None)
        if entry is None:
            raise TrashError(f"project {project_id} is not in the trash ({self.path})")
        target = self.model_dir / entry.root
        if target.exists():
            raise TrashError(f"project {project_id} has state again in {target}; move that away first")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            entry.files.rename(target)
        except OSError as exc:
            raise TrashError(f"cannot move {entry.files} back to {target}: {exc.strerror or exc}") from exc
        shutil.rmtree(entry.path, ignore_errors=True)
        return target

    def purge(self) -> List[str]:
        """Delete the entries older than `days` (one cut off while being made: by its file time);
        returns their names."""
        if not self.path.is_dir():
            return []
        cutoff = time.time() - self.days * 86400
        purged = []
        for path in self.path.iterdir():
            doomed = path
            if not path.name.startswith("."):  # ".purging-...": a purge cut off, finished here
                deleted_at = self._deleted_at(path)
                if deleted_at is None or deleted_at > cutoff:
                    continue
                doomed = path.with_name(f".purging-{path.name}")
                try:
                    path.rename(doomed)  # atomic: one process purges it, `restore` never finds half of it
                except OSError:
                    continue  # another process got there first
                purged.append(path.name)
            shutil.rmtree(doomed, ignore_errors=True)
        if purged:
            log.warning("trash: purged %s (deleted over %g days ago)", ", ".join(purged), self.days)
        return purged

    def _deleted_at(self, path: Path) -> Optional[float]:
        """When an entry was made (its file time if its record is unreadable); None once gone."""
        try:
            return float(json.loads((path / self.INFO).read_text(encoding="utf-8"))["deleted_at"])
        except (OSError, ValueError, KeyError, TypeError):
            try:
                return path.stat().st_mtime
            except OSError:
                return None
