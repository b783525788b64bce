"""When pushes to Label Studio run (`PushSchedule`): after a version is published (at most every
PUSH_EVERY_LABELS labels or PUSH_EVERY_SECONDS seconds; a push held back runs when the time is
up), when Label Studio connects a project whose current version it lacks, and at start-up for
every project it is behind on. Pushes run on one pusher thread per project, so a long push
never holds the training lock (the next run goes on meanwhile), and the pushes asked for while
one runs coalesce into one push of the newest version. A failed push is recorded and retried,
backing off."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Set

from .engine import Engine
from .logs import public_error
from .registry import UNTRAINED
from .settings import Settings
from .studio_push import STATE, PredictionPush

log = logging.getLogger(__name__)

CONNECT_DELAY = 2.0  # seconds between /setup and the connect push
RETRY_SECONDS, MAX_RETRY_SECONDS = 30.0, 1800.0  # a failed push is retried, backing off to this
BUSY_RETRY_SECONDS = 10.0  # another process is pushing the project: look again this much later
PUSH_LOCK = "push.lock"


class PushSchedule:
    """`prepare(project_id, authorize)` runs first on each pass, under the push lock: False when
    there is nothing to push to (Label Studio's project of this id is another one now);
    `authorize` asks it to set the webhook's token too."""

    def __init__(self, engine: Engine, settings: Settings, push: PredictionPush,
                 prepare: Callable[[str, bool], bool]):
        self.engine = engine
        self.settings = settings
        self.push = push
        self._prepare = prepare
        self._lock = threading.Lock()
        self._due_changed = threading.Condition(self._lock)
        self._due: Dict[str, float] = {}  # project -> when its next push is due (time.time())
        self._pushers: Set[str] = set()  # projects whose pusher thread runs
        self._failures: Dict[str, int] = {}  # failed pushes in a row, per project
        self._to_authorize: Set[str] = set()  # projects whose webhook needs our auth header

    def published(self, project_id: str, record: Dict) -> None:
        """Schedule the push; it runs on this link's own thread, never holding the run's lock
        (a 10k-task push takes minutes: the next run must not wait for it)."""
        state = self.engine.project(project_id).read_json(STATE)
        wait = self._wait(state, record.get("n_labels", 0))
        record["push"] = {"status": "deferred" if wait > 0 else "scheduled", "in_seconds": round(wait, 1)}
        self.schedule(project_id, wait)

    def _wait(self, state: Dict, n_labels: int) -> float:
        """Seconds to hold a push back: none for a project's first trained version, after
        PUSH_EVERY_LABELS new labels or PUSH_EVERY_SECONDS since the last push."""
        if not state.get("pushed") or state["pushed"] == UNTRAINED:
            return 0.0
        if n_labels - state.get("pushed_labels", 0) >= self.settings.push_every_labels:
            return 0.0
        return max(0.0, state.get("pushed_at", 0.0) + self.settings.push_every_seconds - time.time())

    def run_finished(self, project_id: str, record: Dict) -> None:
        """A run that published nothing (skipped, failed) still retries a push that failed
        before: Label Studio must not keep an old version's scores until the labels change."""
        if record.get("status") == "published" or project_id in self._due:
            return
        if self.engine.current_version(project_id) != UNTRAINED and self.behind(project_id):
            self.schedule(project_id, 0.0)

    def resume(self) -> None:
        """At start-up: bring Label Studio up to date for every project it is behind on (a push
        held back, failed or cut off when the process stopped)."""
        root = self.settings.model_dir / "projects"
        for path in sorted(root.iterdir()) if root.is_dir() else []:
            if path.is_dir() and not path.name.startswith(".") and (path / STATE).exists():
                try:
                    if self.engine.current_version(path.name) != UNTRAINED and self.behind(path.name):
                        self.schedule(path.name, CONNECT_DELAY)
                except Exception:  # noqa: BLE001 - one broken project never stops the others
                    log.exception("project %s: cannot check what Label Studio has", path.name)

    def behind(self, project_id: str) -> bool:
        """Label Studio lacks the current version's predictions."""
        return self.engine.project(project_id).read_json(STATE).get("pushed") != self.engine.current_version(project_id)

    def schedule(self, project_id: str, delay: float, authorize: bool = False) -> None:
        """Push the project's then current version in `delay` seconds (`authorize`: set the
        webhook's token first). One pusher thread per project: pushes never overlap, and
        requests made meanwhile coalesce into one push of the newest version."""
        with self._due_changed:
            if authorize:
                self._to_authorize.add(project_id)
            due = time.time() + delay
            if self._due.get(project_id, float("inf")) <= due:
                return  # an earlier push is due already: it takes the newest version
            self._due[project_id] = due
            self._due_changed.notify_all()
            if project_id in self._pushers:
                return
            self._pushers.add(project_id)
        threading.Thread(target=self._pusher, args=(project_id,), daemon=True, name=f"push-{project_id}").start()

    def _pusher(self, project_id: str) -> None:
        try:
            while True:
                with self._due_changed:
                    due = self._due.get(project_id)
                    if due is None:
                        return
                    if due > time.time():
                        self._due_changed.wait(due - time.time())
                        continue
                    del self._due[project_id]
                    authorize = project_id in self._to_authorize
                    self._to_authorize.discard(project_id)
                try:
                    outcome = self._update_studio(project_id, authorize)
                except Exception:  # noqa: BLE001 - the pusher never dies with work left
                    log.exception("project %s: the push failed", project_id)
                    outcome = "failed"
                if outcome == "busy":  # another process is pushing this project
                    self.schedule(project_id, BUSY_RETRY_SECONDS)
                elif outcome == "failed":
                    failures = self._failures[project_id] = self._failures.get(project_id, 0) + 1
                    self.schedule(project_id, min(RETRY_SECONDS * 2 ** (failures - 1), MAX_RETRY_SECONDS))
                else:
                    self._failures.pop(project_id, None)
        finally:
            with self._lock:
                self._pushers.discard(project_id)
                if project_id in self._due:  # scheduled as it ended: a fresh pusher takes it
                    self._pushers.add(project_id)
                    threading.Thread(target=self._pusher, args=(project_id,), daemon=True,
                                     name=f"push-{project_id}").start()

    def _update_studio(self, project_id: str, authorize: bool) -> str:
        """One pass of the pusher, under the project's push lock (shared by every process on
        this MODEL_DIR: replicas and workers never push one project at once): "done", "busy",
        or "failed". A project deleted meanwhile is done: nothing to push, nothing to retry."""
        project = self.engine.project(project_id)
        with project.try_lock(PUSH_LOCK) as held:
            if not project.exists:
                return "done"
            if not held:
                return "busy"
            if not self._prepare(project_id, authorize):
                return "done"  # Label Studio's project of this id is another one: the old state is in the trash
            return "done" if self.push_quietly(project_id) else "failed"

    def push_quietly(self, project_id: str) -> bool:
        """Push the current version if Label Studio has not got it. Records the outcome
        (`/versions` shows it as `push`; a failure also in `/health` until a push succeeds);
        False when it failed (retried later)."""
        project = self.engine.project(project_id)
        if project.read_json(STATE).get("pushed") == self.engine.current_version(project_id):
            return True
        started = time.time()
        try:
            outcome = {"status": "ok", **self.push.push(project_id, self.engine.schema(project_id))}
        except Exception as exc:  # noqa: BLE001
            outcome = {"status": "failed", "error": public_error(exc)}
            log.warning("project %s: pushing predictions to Label Studio failed (retried later; its previous "
                        "predictions stay): %s", project_id, outcome["error"])
        if project.exists:
            outcome.update(seconds=round(time.time() - started, 1),
                           at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            project.write_json(STATE, {**project.read_json(STATE), "last_push": outcome})
        return outcome["status"] == "ok"
