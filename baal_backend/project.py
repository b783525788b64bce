"""One Label Studio project's state on disk: labels, label config, versions, last run.

Nothing is created by reading: the directory appears with the first write (a label config that
parses, a label), so a refused config or a read-only request for an unknown project leaves no
trace.
"""
from __future__ import annotations

import fcntl
import json
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

from .labels import LabelStore
from .model import Classifier
from .registry import Registry, atomic_write_text

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

    def remove(self) -> None:
        """Delete every file of the project (call under its training lock)."""
        self.close()
        if self.exists:
            trash = self.root.with_name(f".deleted-{self.root.name}-{time.time_ns()}")
            self.root.rename(trash)  # atomic: readers see the whole project or none
            shutil.rmtree(trash, ignore_errors=True)
