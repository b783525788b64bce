"""Labels from Label Studio: the sync before a run that asks for it, and the check for labels
whose webhook was lost (`Reconciler`).

* A sync (Start training, a project's first label, or asked for by the check) re-reads every
  label from Label Studio and merges it with what webhooks stored meanwhile; a failing sync is
  recorded and the run goes on with the stored labels.
* At start-up and every RECONCILE_SECONDS, on one thread per process: Label Studio never retries
  a webhook, so a label whose webhook failed or came while the backend was down would be missing
  for good. A cheap check (`reconcile`: two small reads, no export) asks for a sync only when
  Label Studio shows changes that the stored labels lack.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Optional, Set

from .engine import Engine
from .logs import public_error
from .schema import Schema
from .settings import Settings
from .studio import source_time
from .studio_client import Activity, LabelStudioClient

log = logging.getLogger(__name__)

#: Per project, written by each sync: "since" (Label Studio's newest annotated task before the
#: export, moved on by each check that finds nothing missing) and "offset" (its annotations that
#: are no label here: other tags', emptied, ...). Its own file: the pusher thread owns the push's.
RECONCILE_STATE = "reconcile.json"
STOP_WAIT = 5.0  # seconds a stopping process waits for a reconcile check under way


class Reconciler:
    def __init__(self, engine: Engine, client: LabelStudioClient, settings: Settings):
        self.engine = engine
        self.client = client
        self.settings = settings
        self._lock = threading.Lock()
        self._stopped = threading.Event()  # the loop's stop signal
        self._thread: Optional[threading.Thread] = None
        self._asked: Set[str] = set()  # projects whose sync the check asked for has not run yet

    # --- the sync -------------------------------------------------------------------------
    def sync(self, project_id: str, schema: Schema, record: Dict) -> None:
        """Read every label from Label Studio and merge it into the store; says how it went in
        the run's `record["sync"]`."""
        started = time.time()
        mark = self._activity(project_id)  # before the export: whatever it is older than, the export has
        try:
            labels = self.client.labels(project_id, schema)
        except Exception as exc:  # noqa: BLE001 - Label Studio down, 401, ...: train on what is stored
            record["sync"] = {"status": "failed", "error": public_error(exc)}
            log.warning("project %s: label sync from Label Studio failed, training on the stored labels: %s",
                        project_id, record["sync"]["error"])
            return
        merged = self.engine.merge_labels(project_id, labels, started)
        record["sync"] = {"status": "ok", "labels": len(labels), "written": merged.written,
                          "removed": merged.removed, "kept_newer": merged.kept_newer}
        log.info("project %s: synced %d labels from Label Studio (%d removed, %d newer ones kept)",
                 project_id, len(labels), merged.removed, merged.kept_newer)
        self._synced(project_id, mark)

    def sync_ran(self, project_id: str) -> None:
        """A run's sync ran (or failed): the check may ask for another."""
        with self._lock:
            self._asked.discard(project_id)

    def _activity(self, project_id: str) -> Optional[Activity]:
        """`LabelStudioClient.activity` of the whole project; None when it cannot be read (logged)."""
        try:
            return self.client.activity(project_id)
        except Exception as exc:  # noqa: BLE001 - the sync goes on; the next check syncs again
            log.warning("project %s: cannot read Label Studio's annotation count: %s", project_id, public_error(exc))
            return None

    def _synced(self, project_id: str, mark: Optional[Activity]) -> None:
        """After a sync, the baseline `reconcile` compares with: `since`, the newest annotated
        task before the export (the export holds everything up to it), and `offset`, Label
        Studio's annotations minus the labels stored, read after the merge. Without a mark, no
        baseline: the next check syncs again."""
        after = self._activity(project_id) if mark is not None else None
        project = self.engine.project(project_id)
        if mark is not None and after is not None and project.exists:
            offset = after.annotations - project.store.count()
            project.write_json(RECONCILE_STATE, {"since": mark.newest, "offset": offset})

    # --- the check for missed webhooks ----------------------------------------------------
    def start(self) -> None:
        """Check every project now, then every RECONCILE_SECONDS, on one thread (started when
        the process serves, not when built: the process that built it may fork the server)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopped.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True, name="reconcile")
            self._thread.start()

    def stop(self) -> None:
        """End the loop; a check under way finishes first (waited for up to STOP_WAIT s)."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self.reconcile_all()
            self._stopped.wait(self.settings.reconcile_seconds)

    def reconcile_all(self) -> List[str]:
        """One check of every project with state (`reconcile`); returns those a sync was asked
        for. A check that fails is logged once and shown in `/health` until one succeeds."""
        root = self.settings.model_dir / "projects"
        problems = self.engine.problems
        synced = []
        for path in sorted(root.iterdir()) if root.is_dir() else []:
            if self._stopped.is_set():
                break
            if path.name.startswith(".") or not path.is_dir():  # temp and trash entries
                continue
            key = f"reconcile:{path.name}"
            try:
                if self.reconcile(path.name):
                    synced.append(path.name)
                problems.pop(key, None)
            except Exception as exc:  # noqa: BLE001 - Label Studio down, 401, ...: checked again next time
                problem = (f"project {path.name}: cannot check Label Studio for labels whose webhook was lost "
                           f"(tried again every {self.settings.reconcile_seconds:g} s): {public_error(exc)}")
                if problems.get(key) != problem:
                    log.warning("%s", problem)
                problems[key] = problem
        for key in [k for k in list(problems) if k.startswith("reconcile:")]:
            if not (root / key.split(":", 1)[1]).is_dir():  # the project went (trashed): so did its problem
                problems.pop(key, None)
        return synced

    def reconcile(self, project_id: str) -> bool:
        """Ask for a sync when Label Studio has label changes that no webhook brought; True when
        asked. Cheap: two small reads (`LabelStudioClient.activity`), no export. In step means
        both: Label Studio's annotations minus the stored labels are still the `offset` of the
        last sync (its annotations that are no label here: other tags', emptied ones), and as
        many of its annotated tasks changed after `since` as stored tasks have a label it dates
        after `since`. A lost creation, edit or deletion breaks one of them. So does a change that
        brings no label (a skip or another tag's annotation on an annotated task, another model's
        prediction): one sync, after which `since` and `offset` take it in; never a sync per check."""
        project = self.engine.project(project_id)
        if not project.exists or project.label_config is None:
            return False  # nothing to sync into yet
        if project_id in self._asked and self.engine.jobs.is_training(project_id) is not False:
            return False  # the sync asked for last time has not run yet
        state = project.read_json(RECONCILE_STATE)
        activity = self.client.activity(project_id, state.get("since"))
        if activity is None:
            return False  # Label Studio no longer has the project
        self.engine.identify(project_id, activity.created, confirmed=True)  # Label Studio's own word
        if not project.exists:
            return False  # another project reuses the id: the old state went to the trash
        store = project.store
        here = store.count()
        changed_here = store.tasks_changed_since(source_time(state.get("since"), "the reconcile mark"))
        if state and activity.annotations - here == state.get("offset") and activity.changed_tasks == changed_here:
            if activity.newest:  # in step up to there: the next check looks only at what comes later
                project.write_json(RECONCILE_STATE, {**state, "since": activity.newest})
            return False
        log.info("project %s: Label Studio has changes no webhook brought (%d annotations there, %d labels here, "
                 "last offset %s; %d annotated tasks changed since %s there, %d here): syncing", project_id,
                 activity.annotations, here, state.get("offset"), activity.changed_tasks, state.get("since"),
                 changed_here)
        with self._lock:
            self._asked.add(project_id)
        self.engine.request_training(project_id, sync=True)
        return True


def missed_webhooks(settings: Settings) -> str:
    """What becomes of a label whose webhook was lost (`/health`): Label Studio never retries one."""
    if settings.label_studio_enabled:
        return (f"recovered: the labels are checked against Label Studio at start-up and every "
                f"{settings.reconcile_seconds:g} s (RECONCILE_SECONDS), and synced when one is missing")
    return ("not recovered: Label Studio never retries a webhook, so a label whose webhook failed or came while the "
            "backend was down stays missing; set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to recover them")
