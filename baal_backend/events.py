"""What the engine announces, for whoever subscribes (the Label Studio link, metrics, ...).

The engine knows nothing of its subscribers. A subscriber implements any of `Listener`'s
methods; an exception in one is logged and never reaches the engine or the other subscribers.
"""
from __future__ import annotations

import logging
from typing import Dict, List

from .schema import Schema

log = logging.getLogger(__name__)


class Listener:
    """Every hook, doing nothing; subclass and override what you need."""

    def run_starting(self, project_id: str, schema: Schema, sync: bool, record: Dict) -> None:
        """A training run holds the project's lock and is about to read the stored labels.
        `sync` asks to refresh them from their source first. Add notes for the run to `record`."""

    def published(self, project_id: str, schema: Schema, version: str, record: Dict) -> None:
        """`version` is now the project's current version."""

    def run_finished(self, project_id: str, record: Dict, seconds: float) -> None:
        """A run ended: `record["status"]` is "published", "skipped" or "failed"."""

    def connected(self, project_id: str, schema: Schema) -> None:
        """Label Studio (re)connected the project (`/setup`)."""

    def serving(self) -> None:
        """This process has started serving (the web worker, or the RQ training worker): start
        background work here, not when subscribing (the process that built the engine may fork)."""

    def stopping(self) -> None:
        """The process is stopping: end that background work."""

    def identifying(self, project_id: str, created: int, objections: List[str]) -> None:
        """A request says the project was created at `created` (epoch seconds), not what is
        stored: append a reason to `objections` if its source disagrees."""

    def deleting(self, project_id: str, objections: List[str]) -> None:
        """A PROJECT_DELETED asks to trash the project's state; append a reason to `objections` to
        refuse (the project still exists at the source). Raising refuses too."""


class Events:
    """Fan-out to the subscribed listeners."""

    def __init__(self) -> None:
        self.listeners: List[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def emit(self, hook: str, *args: object) -> bool:
        """Call `hook` on every listener; False when one of them raised."""
        ok = True
        for listener in self.listeners:
            try:
                getattr(listener, hook)(*args)
            except Exception:  # noqa: BLE001 - a subscriber never breaks the engine
                log.exception("%s.%s failed", type(listener).__name__, hook)
                ok = False
        return ok

    def objections(self, hook: str, *args: object) -> List[str]:
        """What the listeners hold against an act (`hook` appends its reasons to the list it is
        given: `identifying`, `deleting`); a listener that raised objects too."""
        objections: List[str] = []
        if not self.emit(hook, *args, objections):
            objections.append(f"the {hook} check failed (see the log)")
        return objections
