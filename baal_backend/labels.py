"""Durable per-project label store (SQLite): what the annotators said, keyed by annotation, and
the tasks Label Studio asked predictions for (the unlabeled pool the learner and the report use).

Webhooks upsert and delete rows; training reads a snapshot. SQLite in WAL mode with
`synchronous=FULL` means a row the webhook acknowledged survives a crash or `kill -9`.

A full sync from Label Studio never replaces the store: `merge` applies Label Studio's state as of
the moment the sync started, and keeps whatever webhooks wrote or deleted after that moment
(deletions leave a tombstone with their time for exactly this).

Webhooks can arrive out of order, so every row also keeps Label Studio's own time of the
annotation (`source_updated_at`, its `updated_at`; 0 when unknown): an older version never
overwrites a newer one, and an annotation deleted in Label Studio is never revived (it cannot be
undeleted there, so any later event for it is a late one). An annotation that was emptied or
cancelled is not deleted: a newer edit that labels it again is stored.
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
    updated_at: float = 0.0  # when this backend stored it
    source_updated_at: float = 0.0  # Label Studio's `updated_at` of the annotation (epoch seconds; 0: unknown)


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
    updated_at REAL NOT NULL,
    source_updated_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS labels_task ON labels(task_id);
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (
    annotation_id INTEGER PRIMARY KEY,
    deleted_at REAL NOT NULL,
    source_updated_at REAL  -- NULL: deleted in Label Studio (final); else emptied at that time
);
"""
#: Columns added since the first release: (table, column, definition). Old files get them on open,
#: their rows keep everything (labels: source time 0, unknown; tombstones: NULL, final deletions).
_ADDED = (("labels", "source_updated_at", "REAL NOT NULL DEFAULT 0"), ("tombstones", "source_updated_at", "REAL"))
_COLUMNS = "annotation_id, task_id, text, label, updated_at, source_updated_at"
_UPSERT = (
    f"INSERT INTO labels ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(annotation_id) DO UPDATE SET "
    "task_id=excluded.task_id, text=excluded.text, label=excluded.label, updated_at=excluded.updated_at, "
    "source_updated_at=excluded.source_updated_at"
)
_TOMBSTONE = "INSERT OR REPLACE INTO tombstones (annotation_id, deleted_at, source_updated_at) VALUES (?, ?, ?)"


def _older(stored: Optional[float], incoming: float) -> bool:
    """Label Studio says `incoming` is older than what is `stored` (never when a time is unknown)."""
    return bool(stored and incoming and incoming < stored)


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
        if self._missing_columns():
            with self._write() as db:  # under the write lock: two processes opening one old file add each once
                for table, column, definition in self._missing_columns(db):
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def _missing_columns(self, db: Optional[sqlite3.Connection] = None) -> List[tuple]:
        """The `_ADDED` columns this file lacks (a file from an older release)."""
        if db is None:
            with self._lock:
                return self._missing_columns(self._connect())
        have = {(table, row[1]) for table in ("labels", "tombstones") for row in db.execute(f"PRAGMA table_info({table})")}
        return [added for added in _ADDED if added[:2] not in have]

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
        """Insert or replace labels by annotation id; returns how many were written. A label that
        Label Studio dates before the stored one (or before the annotation was emptied), or whose
        annotation was deleted there, is a late event: left out."""
        now = time.time()
        with self._write() as db:
            written = 0
            for lb in labels:
                if self._late(db, lb.annotation_id, lb.source_updated_at):
                    continue
                db.execute(_UPSERT, (lb.annotation_id, lb.task_id, lb.text, lb.label, lb.updated_at or now,
                                     lb.source_updated_at))
                db.execute("DELETE FROM tombstones WHERE annotation_id = ?", (lb.annotation_id,))
                written += 1
        return written

    @staticmethod
    def _late(db: sqlite3.Connection, annotation_id: int, source_updated_at: float) -> bool:
        """Whether the store knows something newer of this annotation than Label Studio's time
        `source_updated_at`: its deletion (always newer), a newer label, or a newer emptying."""
        tomb = db.execute("SELECT source_updated_at FROM tombstones WHERE annotation_id = ?", (annotation_id,)).fetchone()
        if tomb is not None and (tomb[0] is None or _older(tomb[0], source_updated_at)):
            return True
        row = db.execute("SELECT source_updated_at FROM labels WHERE annotation_id = ?", (annotation_id,)).fetchone()
        return row is not None and _older(row[0], source_updated_at)

    def delete(self, annotation_ids: Iterable[int], emptied_at: Optional[float] = None) -> int:
        """Remove labels by annotation id, leaving tombstones; returns how many existed.

        `emptied_at=None`: Label Studio deleted the annotations, for good. A time (Label Studio's
        `updated_at`, 0 when unknown): they were emptied or cancelled then and may be labeled
        again later; a label Label Studio dates after that time stays."""
        ids = [int(i) for i in annotation_ids]
        now = time.time()
        with self._write() as db:
            if emptied_at is not None:
                ids = [i for i in ids if not self._late(db, i, emptied_at)]
            before = db.total_changes
            db.executemany("DELETE FROM labels WHERE annotation_id = ?", [(i,) for i in ids])
            removed = db.total_changes - before
            db.executemany(_TOMBSTONE, [(i, now, emptied_at) for i in ids])
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
            db.executemany(_TOMBSTONE, [(i, now, None) for i in gone])
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
        for rows and deletions that webhooks recorded at or after `started`: those are newer.
        Where Label Studio dates both sides (`source_updated_at`), the newer one wins instead."""
        incoming = {lb.annotation_id: lb for lb in source}
        with self._write() as db:
            local = {r[0]: r[1:] for r in db.execute("SELECT annotation_id, updated_at, source_updated_at FROM labels")}
            tombs = {r[0]: r[1:] for r in db.execute("SELECT annotation_id, deleted_at, source_updated_at FROM tombstones")}
            newer = {i for i, (at, _) in local.items() if at >= started and i not in incoming}
            rows = []
            for i, lb in incoming.items():
                at, stored = local.get(i) or tombs.get(i) or (0.0, None)
                if _older(stored, lb.source_updated_at) or (at >= started and not _older(lb.source_updated_at, stored)):
                    newer.add(i)  # a webhook's newer label, emptying or deletion
                else:
                    rows.append((i, lb.task_id, lb.text, lb.label, lb.updated_at or started, lb.source_updated_at))
            stale = [i for i, (at, _) in local.items() if i not in incoming and at < started]
            db.executemany("DELETE FROM labels WHERE annotation_id = ?", [(i,) for i in stale])
            db.executemany(_UPSERT, rows)
            # Label Studio has these annotations (after their deletion reached us): the tombstone was wrong.
            # The other tombstones stay: they keep late events from reviving what they deleted.
            db.executemany("DELETE FROM tombstones WHERE annotation_id = ?", [(r[0],) for r in rows])
        return MergeResult(written=len(rows), removed=len(stale), kept_newer=len(newer))

    def all(self) -> List[Label]:
        """A consistent snapshot of every label, oldest first."""
        with self._lock:
            rows = self._connect().execute(f"SELECT {_COLUMNS} FROM labels ORDER BY updated_at, annotation_id").fetchall()
        return [Label(*row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return self._connect().execute("SELECT COUNT(*) FROM labels").fetchone()[0]

    def tasks_changed_since(self, when: float) -> int:
        """How many tasks have a label that Label Studio dates after `when` (epoch seconds): set
        against its own count of tasks changed since then, it tells whether webhooks brought
        every change (labels of unknown time are left out)."""
        with self._lock:
            return self._connect().execute(
                "SELECT COUNT(DISTINCT task_id) FROM labels WHERE source_updated_at > ?", (when,)).fetchone()[0]

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
