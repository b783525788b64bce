"""Durable per-project label store (SQLite): what the annotators said, keyed by annotation, and
the tasks Label Studio asked predictions for (the unlabeled pool the learner and the report use).

Webhooks upsert and delete rows; training reads a snapshot. SQLite in WAL mode with
`synchronous=FULL` means a row the webhook acknowledged survives a crash or `kill -9`.

A full sync from Label Studio never replaces the store: `merge` applies Label Studio's state as of
the moment the sync started, and keeps whatever webhooks wrote or deleted after that moment
(deletions leave a tombstone with their time for exactly this).
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional


@dataclass(frozen=True)
class Label:
    """One annotation's class for one task."""

    annotation_id: int
    task_id: int
    text: str
    label: str
    updated_at: float = 0.0


@dataclass(frozen=True)
class MergeResult:
    """What a sync changed: rows added or changed, rows removed, rows kept because a webhook
    touched them after the sync started."""

    written: int
    removed: int
    kept_newer: int


_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    annotation_id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    label TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_task ON labels(task_id);
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (
    annotation_id INTEGER PRIMARY KEY,
    deleted_at REAL NOT NULL
);
"""
_COLUMNS = "annotation_id, task_id, text, label, updated_at"
_UPSERT = (
    f"INSERT INTO labels ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) ON CONFLICT(annotation_id) DO UPDATE SET "
    "task_id=excluded.task_id, text=excluded.text, label=excluded.label, updated_at=excluded.updated_at"
)


MAX_OPEN = 32  # open label databases per process (3 files each in WAL mode), however many projects
MAX_POOL = 20_000  # remembered tasks per project (the newest): the pool's embeddings stay ~30 MB


class LabelStore:
    """Thread-safe access to one project's labels file.

    The connection opens on first use and may be closed again when `MAX_OPEN` other stores are
    in use (least recently used first): open files stay bounded with any number of projects.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = None
        with self._lock:
            self._connect().executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        """The open connection (call under `self._lock`)."""
        if self._db is None:
            # autocommit mode: transactions are explicit (BEGIN IMMEDIATE) so a merge reads and
            # writes under one write lock, also against other processes sharing the file
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        _pool.used(self)
        return self._db

    def _close_if_idle(self) -> bool:
        """Close the connection unless another thread is using it; True when closed (or was)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._db is not None:
                self._db.close()
                self._db = None
            return True
        finally:
            self._lock.release()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def upsert(self, labels: Iterable[Label]) -> int:
        """Insert or replace labels by annotation id; returns how many were written."""
        now = time.time()
        rows = [(lb.annotation_id, lb.task_id, lb.text, lb.label, lb.updated_at or now) for lb in labels]
        with self._write() as db:
            db.executemany(_UPSERT, rows)
            db.executemany("DELETE FROM tombstones WHERE annotation_id = ?", [(r[0],) for r in rows])
        return len(rows)

    def delete(self, annotation_ids: Iterable[int]) -> int:
        """Remove labels by annotation id (leaving tombstones); returns how many existed."""
        ids = [int(i) for i in annotation_ids]
        now = time.time()
        with self._write() as db:
            before = db.total_changes
            db.executemany("DELETE FROM labels WHERE annotation_id = ?", [(i,) for i in ids])
            removed = db.total_changes - before
            db.executemany("INSERT OR REPLACE INTO tombstones VALUES (?, ?)", [(i, now) for i in ids])
        return removed

    def delete_tasks(self, task_ids: Iterable[int]) -> int:
        """Remove every label of these tasks (Label Studio deleted the tasks); returns how many."""
        tasks = [(int(t),) for t in task_ids]
        now = time.time()
        with self._write() as db:
            gone: List[int] = []
            for (task,) in tasks:
                gone += [r[0] for r in db.execute("SELECT annotation_id FROM labels WHERE task_id = ?", (task,))]
            db.executemany("DELETE FROM labels WHERE annotation_id = ?", [(i,) for i in gone])
            db.executemany("INSERT OR REPLACE INTO tombstones VALUES (?, ?)", [(i, now) for i in gone])
            db.executemany("DELETE FROM tasks WHERE task_id = ?", tasks)
        return len(gone)

    def remember_tasks(self, tasks: Iterable[tuple]) -> int:
        """Record (task id, text) pairs Label Studio asked predictions for; the newest text wins.
        Only the newest `MAX_POOL` tasks are kept."""
        now = time.time()
        rows = [(int(task_id), text, now) for task_id, text in tasks]
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?)", rows)
            if db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] > MAX_POOL:
                db.execute("DELETE FROM tasks WHERE task_id NOT IN "
                           "(SELECT task_id FROM tasks ORDER BY seen_at DESC, task_id DESC LIMIT ?)", (MAX_POOL,))
        return len(rows)

    def unlabeled(self) -> List[tuple]:
        """(task id, text) of the remembered tasks with no label, by task id."""
        with self._lock:
            return self._connect().execute(
                "SELECT task_id, text FROM tasks WHERE task_id NOT IN (SELECT task_id FROM labels) ORDER BY task_id"
            ).fetchall()

    def merge(self, source: Iterable[Label], started: float) -> MergeResult:
        """Make the store mirror `source` (Label Studio's labels, read from `started` on), except
        for rows and deletions that webhooks recorded at or after `started`: those are newer."""
        incoming = {lb.annotation_id: lb for lb in source}
        with self._write() as db:
            local = {r[0]: r[1] for r in db.execute("SELECT annotation_id, updated_at FROM labels")}
            fresh_deletes = {r[0] for r in db.execute("SELECT annotation_id FROM tombstones WHERE deleted_at >= ?", (started,))}
            newer = {i for i, at in local.items() if at >= started} | fresh_deletes
            stale = [i for i in local if i not in incoming and i not in newer]
            db.executemany("DELETE FROM labels WHERE annotation_id = ?", [(i,) for i in stale])
            rows = [
                (lb.annotation_id, lb.task_id, lb.text, lb.label, lb.updated_at or started)
                for i, lb in incoming.items()
                if i not in newer
            ]
            db.executemany(_UPSERT, rows)
            # tombstones older than this sync have served their purpose: Label Studio's state won
            db.execute("DELETE FROM tombstones WHERE deleted_at < ?", (started,))
        kept = len(newer & (incoming.keys() | local.keys()))
        return MergeResult(written=len(rows), removed=len(stale), kept_newer=kept)

    def all(self) -> List[Label]:
        """A consistent snapshot of every label, oldest first."""
        with self._lock:
            rows = self._connect().execute(f"SELECT {_COLUMNS} FROM labels ORDER BY updated_at, annotation_id").fetchall()
        return [Label(*row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return self._connect().execute("SELECT COUNT(*) FROM labels").fetchone()[0]

    def get(self, annotation_id: int) -> Optional[Label]:
        with self._lock:
            row = self._connect().execute(f"SELECT {_COLUMNS} FROM labels WHERE annotation_id = ?", (annotation_id,)).fetchone()
        return Label(*row) if row else None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
        _pool.forget(self)


class _Pool:
    """The stores with an open connection, least recently used first."""

    def __init__(self) -> None:
        self._open: "OrderedDict[int, LabelStore]" = OrderedDict()
        self._lock = threading.Lock()

    def used(self, store: LabelStore) -> None:
        with self._lock:
            self._open[id(store)] = store
            self._open.move_to_end(id(store))
            surplus = [s for s in list(self._open.values())[: max(0, len(self._open) - MAX_OPEN)] if s is not store]
        for victim in surplus:  # outside the pool lock: closing takes the victim's own lock
            if victim._close_if_idle():
                self.forget(victim)

    def forget(self, store: LabelStore) -> None:
        with self._lock:
            self._open.pop(id(store), None)


_pool = _Pool()


def fingerprint(labels: Iterable[Label], *context: str) -> str:
    """A digest of what a training run learns from: each label's annotation, task, class and text,
    plus `context` (the classes, the encoder, the mode). Equal digests = identical training input."""
    digest = hashlib.blake2b(digest_size=16)
    for part in context:
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x00")
    for lb in sorted(labels, key=lambda lb: lb.annotation_id):
        digest.update(f"{lb.annotation_id}\x00{lb.task_id}\x00{lb.label}\x00".encode("utf-8", "surrogatepass"))
        digest.update(hashlib.blake2b(lb.text.encode("utf-8", "surrogatepass"), digest_size=16).digest())
    return digest.hexdigest()
