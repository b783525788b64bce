"""Versioned models of one project on disk, with atomic publishing and a `current` pointer.

A version is written into a temporary directory, fsynced, then renamed into place; only then
does the `current` pointer (itself replaced atomically) move to it. A crash at any moment leaves
either the old pointer and a stray temp dir (removed by the next training run, under the
project's training lock, so never another process's publish in progress) or the new version
complete. Pruning never removes a version this process is loading or serving (`pinned`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional

UNTRAINED = "v0000"  # the base model before any training run of this project
META = "meta.json"
BROKEN = "broken.json"  # beside the meta of a version that failed to load
_NAME = re.compile(r"^v(\d{4,})-\d{8}-\d{6}$")


def _fsync_path(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file so readers see the old or the new content, never a torn one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent)


def version_number(name: str) -> int:
    """`v0012-20261126-101500` -> 12; the untrained model is 0."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else 0


class Registry:
    """The versions directory of one project."""

    def __init__(self, root: Path, keep: int = 5):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / "current.json"
        self.keep = keep
        self._lock = threading.Lock()
        self._pinned: Counter = Counter()

    def remove_strays(self) -> int:
        """Delete the temp dirs of interrupted publishes. Call only under the project's training
        lock: another process's publish in progress also looks like a stray."""
        strays = list(self.versions_dir.glob(".tmp-*")) if self.versions_dir.exists() else []
        for stray in strays:
            shutil.rmtree(stray, ignore_errors=True)
        return len(strays)

    def list(self) -> List[str]:
        """Complete, usable versions, oldest first."""
        return [name for name in self._complete() if not (self.versions_dir / name / BROKEN).exists()]

    def _complete(self) -> List[str]:
        """Every completely written version, broken ones included, oldest first."""
        if not self.versions_dir.exists():
            return []
        names = [p.name for p in self.versions_dir.iterdir() if _NAME.match(p.name) and (p / META).exists()]
        return sorted(names, key=version_number)

    def mark_broken(self, name: str, reason: str) -> None:
        """`name` cannot be loaded: never serve it again (in any process); `current` falls back
        to the newest usable version."""
        try:
            (self.versions_dir / name / BROKEN).write_text(json.dumps({"reason": reason}))
        except OSError:
            pass  # read-only MODEL_DIR: this process still refuses it

    def pin(self, name: str) -> None:
        """Keep `name` from being pruned (it is being loaded or served) until `unpin`."""
        with self._lock:
            self._pinned[name] += 1

    def unpin(self, name: str) -> None:
        with self._lock:
            self._pinned[name] -= 1
            if self._pinned[name] <= 0:
                del self._pinned[name]

    def current(self) -> Optional[str]:
        """The version to serve, or None before the first training run."""
        try:
            name = json.loads(self.pointer.read_text())["version"]
            if (self.versions_dir / name / META).exists() and not (self.versions_dir / name / BROKEN).exists():
                return name
        except (OSError, ValueError, KeyError):
            pass
        versions = self.list()
        return versions[-1] if versions else None

    def path(self, name: str) -> Path:
        return self.versions_dir / name

    def meta(self, name: str) -> Dict:
        return json.loads((self.versions_dir / name / META).read_text())

    def publish(self, save: Callable[[Path], None], meta: Dict) -> str:
        """Write a new version with `save(dir)`, make it current, prune old ones; return its name."""
        with self._lock:
            existing = self._complete()
            number = (version_number(existing[-1]) if existing else 0) + 1
            name = f"v{number:04d}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
            tmp = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
            tmp.mkdir(parents=True)
            try:
                save(tmp)
                (tmp / META).write_text(json.dumps({**meta, "version": name}, indent=1))
                for file in tmp.rglob("*"):
                    if file.is_file():
                        _fsync_path(file)
                _fsync_path(tmp)
                os.rename(tmp, self.versions_dir / name)
                _fsync_path(self.versions_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            atomic_write_text(self.pointer, json.dumps({"version": name}))
            self._prune(name)
            return name

    def _prune(self, current: str) -> None:
        versions = self.list()
        for name in versions[: max(0, len(versions) - self.keep)]:
            if name != current and name not in self._pinned:
                shutil.rmtree(self.versions_dir / name, ignore_errors=True)
