"""Durable per-project label store (SQLite): what the annotators said, keyed by annotation.

Webhooks upsert and delete rows; training reads a snapshot. SQLite in WAL mode with
`synchronous=FULL` means a row the webhook acknowledged survives a crash or `kill -9`.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional


@dataclass(frozen=True)
class Label:
    """One annotation's class for one task."""

    annotation_id: int
    task_id: int
    text: str
    label: str
    updated_at: float = 0.0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    annotation_id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    label TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_task ON labels(task_id);
"""


class LabelStore:
    """Thread-safe access to one project's labels file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def upsert(self, labels: Iterable[Label], replace_all: bool = False) -> int:
        """Insert or replace labels by annotation id; returns how many were written.

        `replace_all` makes the given labels the whole store, in one transaction (a full sync).
        """
        rows = [(lb.annotation_id, lb.task_id, lb.text, lb.label, lb.updated_at or time.time()) for lb in labels]
        with self._lock, self._db:
            if replace_all:
                self._db.execute("DELETE FROM labels")
            self._db.executemany(
                "INSERT INTO labels VALUES (?, ?, ?, ?, ?) ON CONFLICT(annotation_id) DO UPDATE SET "
                "task_id=excluded.task_id, text=excluded.text, label=excluded.label, updated_at=excluded.updated_at",
                rows,
            )
        return len(rows)

    def delete(self, annotation_ids: Iterable[int]) -> int:
        """Remove labels by annotation id; returns how many existed."""
        ids = [(int(i),) for i in annotation_ids]
        with self._lock, self._db:
            cur = self._db.executemany("DELETE FROM labels WHERE annotation_id = ?", ids)
        return cur.rowcount

    def all(self) -> List[Label]:
        """A consistent snapshot of every label, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT annotation_id, task_id, text, label, updated_at FROM labels ORDER BY updated_at, annotation_id"
            ).fetchall()
        return [Label(*row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]

    def task_ids(self) -> set:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT DISTINCT task_id FROM labels")}

    def get(self, annotation_id: int) -> Optional[Label]:
        with self._lock:
            row = self._db.execute(
                "SELECT annotation_id, task_id, text, label, updated_at FROM labels WHERE annotation_id = ?",
                (annotation_id,),
            ).fetchone()
        return Label(*row) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
