"""The Label Studio side of the loop, with credentials (`LABEL_STUDIO_URL` + `LABEL_STUDIO_API_KEY`).

It subscribes to the engine's events:
* before a run that asks for it (Start training, a project's first label): sync the labels from
  Label Studio, merged with what webhooks stored meanwhile; a failing sync is recorded and the
  run goes on with the stored labels;
* after a version is published (at most every PUSH_EVERY_LABELS labels or PUSH_EVERY_SECONDS
  seconds; a push held back runs when the time is up), and when Label Studio connects a project
  whose current version it has not received yet: push, on one pusher thread per project, so a
  long push never holds the training lock (the next run goes on meanwhile) and the pushes asked
  for while one runs coalesce into one push of the newest version. A push lists the tasks a page at a time
  (no annotations, no predictions), scores the unlabeled ones, imports their predictions a page
  at a time (skipping tasks deleted meanwhile), makes the version the project's `model_version`
  (once per project also switching it to uncertainty sampling: greyed out in the Community UI,
  honoured by its API), then deletes the predictions of this backend's older versions, so Label
  Studio holds at most one of ours per task.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import time
from typing import Dict, List, Optional, Set

from .engine import Engine
from .events import Listener
from .logs import public_error
from .project import Project
from .registry import UNTRAINED
from .schema import Schema
from .settings import Settings
from .studio import predictions_json, texts_of
from .studio_client import UNCERTAINTY_SAMPLING, LabelStudioClient

log = logging.getLogger(__name__)

STATE = "studio.json"  # per project: {"pushed", "pushed_at", "pushed_labels", "sampling_set"}
#: Model versions this backend writes: v0000 and vNNNN-YYYYmmdd-HHMMSS.
OURS = re.compile(r"v\d{4,}(-\d{8}-\d{6})?")
CONNECT_DELAY = 2.0  # seconds between /setup and the connect push
RETRY_SECONDS, MAX_RETRY_SECONDS = 30.0, 1800.0  # a failed push is retried, backing off to this
BUSY_RETRY_SECONDS = 10.0  # another process is pushing the project: look again this much later
PUSH_LOCK = "push.lock"


class StudioLink(Listener):
    def __init__(self, engine: Engine, client: LabelStudioClient, settings: Settings):
        self.engine = engine
        self.client = client
        self.settings = settings
        self._to_authorize: Set[str] = set()  # projects whose webhook needs our auth header
        self._lock = threading.Lock()
        self._due_changed = threading.Condition(self._lock)
        self._due: Dict[str, float] = {}  # project -> when its next push is due (time.time())
        self._pushers: Set[str] = set()  # projects whose pusher thread runs
        self._failures: Dict[str, int] = {}  # failed pushes in a row, per project

    # --- events ---------------------------------------------------------------------------
    def run_starting(self, project_id: str, schema: Schema, sync: bool, record: Dict) -> None:
        if not sync:
            return
        started = time.time()
        try:
            labels = self.client.labels(project_id, schema)
        except Exception as exc:  # noqa: BLE001 - Label Studio down, 401, ...: train on what is stored
            record["sync"] = {"status": "failed", "error": _reason(exc)}
            log.warning("project %s: label sync from Label Studio failed, training on the stored labels: %s",
                        project_id, record["sync"]["error"])
            return
        merged = self.engine.merge_labels(project_id, labels, started)
        record["sync"] = {"status": "ok", "labels": len(labels), "written": merged.written,
                          "removed": merged.removed, "kept_newer": merged.kept_newer}
        log.info("project %s: synced %d labels from Label Studio (%d removed, %d newer ones kept)",
                 project_id, len(labels), merged.removed, merged.kept_newer)

    def published(self, project_id: str, schema: Schema, version: str, record: Dict) -> None:
        """Schedule the push; it runs on this link's own thread, never holding the run's lock
        (a 10k-task push takes minutes: the next run must not wait for it)."""
        state = self.engine.project(project_id).read_json(STATE)
        wait = self._wait(state, record.get("n_labels", 0))
        record["push"] = {"status": "deferred" if wait > 0 else "scheduled", "in_seconds": round(wait, 1)}
        self._schedule(project_id, wait)

    def _wait(self, state: Dict, n_labels: int) -> float:
        """Seconds to hold a push back: none for a project's first trained version, after
        PUSH_EVERY_LABELS new labels or PUSH_EVERY_SECONDS since the last push."""
        if not state.get("pushed") or state["pushed"] == UNTRAINED:
            return 0.0
        if n_labels - state.get("pushed_labels", 0) >= self.settings.push_every_labels:
            return 0.0
        return max(0.0, state.get("pushed_at", 0.0) + self.settings.push_every_seconds - time.time())

    def _schedule(self, project_id: str, delay: float) -> None:
        """Push the project's then current version in `delay` seconds. One pusher thread per
        project: pushes never overlap, and requests made meanwhile coalesce into one push of
        the newest version."""
        with self._due_changed:
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
                    self._schedule(project_id, BUSY_RETRY_SECONDS)
                elif outcome == "failed":
                    failures = self._failures[project_id] = self._failures.get(project_id, 0) + 1
                    self._schedule(project_id, min(RETRY_SECONDS * 2 ** (failures - 1), MAX_RETRY_SECONDS))
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
            if authorize:
                self._authorize_webhook(project_id)
            return "done" if self._push_quietly(project_id) else "failed"

    def resume(self) -> None:
        """At start-up: bring Label Studio up to date for every project it is behind on (a push
        held back, failed or cut off when the process stopped)."""
        root = self.settings.model_dir / "projects"
        for path in sorted(root.iterdir()) if root.is_dir() else []:
            if path.is_dir() and not path.name.startswith(".") and (path / STATE).exists():
                try:
                    if self.engine.current_version(path.name) != UNTRAINED and self._behind(path.name):
                        self._schedule(path.name, CONNECT_DELAY)
                except Exception:  # noqa: BLE001 - one broken project never stops the others
                    log.exception("project %s: cannot check what Label Studio has", path.name)

    def run_finished(self, project_id: str, record: Dict, seconds: float) -> None:
        """A run that published nothing (skipped, failed) still retries a push that failed
        before: Label Studio must not keep an old version's scores until the labels change."""
        if record.get("status") == "published" or project_id in self._due:
            return
        if self.engine.current_version(project_id) != UNTRAINED and self._behind(project_id):
            self._schedule(project_id, 0.0)

    def _behind(self, project_id: str) -> bool:
        """Label Studio lacks the current version's predictions, or still holds older ones."""
        state = self.engine.project(project_id).read_json(STATE)
        return state.get("pushed") != self.engine.current_version(project_id) or bool(state.get("cleanup_pending"))

    def connected(self, project_id: str, schema: Schema) -> None:
        """On /setup: push the current version if Label Studio has not got it, and give the
        webhook Label Studio made for this backend our basic-auth header (it makes it without
        one). A little later, on the pusher thread: Label Studio waits 3 s for /setup and is
        connecting meanwhile (it calls /setup twice; the two requests coalesce)."""
        state = self.engine.project(project_id).read_json(STATE)
        authorize = self.settings.auth_enabled and state.get("webhook_auth") != self._auth_digest()
        if not authorize and not self._behind(project_id):
            return
        if authorize:
            with self._lock:
                self._to_authorize.add(project_id)
        self._schedule(project_id, CONNECT_DELAY)

    def _auth_digest(self) -> str:
        """Which credentials the webhook header was set for (never the credentials themselves)."""
        secret = f"{self.settings.basic_auth_user}:{self.settings.basic_auth_pass}".encode()
        return hashlib.sha256(b"webhook-auth\0" + secret).hexdigest()[:16]

    def _authorize_webhook(self, project_id: str) -> None:
        """Add `Authorization: Basic ...` to the project's webhooks that Label Studio made for a
        model connected with our basic-auth user; without it every webhook would get a 401."""
        try:
            header = "Basic " + base64.b64encode(
                f"{self.settings.basic_auth_user}:{self.settings.basic_auth_pass}".encode()).decode()
            ours = {m["url"].rstrip("/") + "/webhook" for m in self.client.ml_backends(project_id)
                    if m.get("auth_method") == "BASIC_AUTH" and m.get("basic_auth_user") == self.settings.basic_auth_user}
            fixed = carried = 0
            for hook in self.client.webhooks(project_id):
                if hook.get("url") in ours:
                    if (hook.get("headers") or {}).get("Authorization") != header:
                        self.client.update_webhook(hook["id"], headers={**(hook.get("headers") or {}), "Authorization": header})
                        fixed += 1
                    carried += 1
            if carried:  # done for these credentials; a new password (or a webhook not made yet) checks again
                project = self.engine.project(project_id)
                project.write_json(STATE, {**project.read_json(STATE), "webhook_auth": self._auth_digest()})
            log.info("project %s: basic auth header set on %d webhook(s) of this backend", project_id, fixed)
        except Exception as exc:  # noqa: BLE001
            log.warning("project %s: could not set the basic auth header on the webhook: %s", project_id, _reason(exc))

    def _push_quietly(self, project_id: str) -> bool:
        """Bring Label Studio up to date: push the current version if it has not got it, or
        finish deleting older versions' predictions. Records the outcome (`/versions` shows it as
        `push`, once the whole push is done); False when it failed (retried later)."""
        project = self.engine.project(project_id)
        state = project.read_json(STATE)
        started = time.time()
        try:
            if state.get("pushed") != self.engine.current_version(project_id):
                stored = self.push(project_id, self.engine.schema(project_id))
                outcome = {"status": "ok", "version": project.read_json(STATE).get("pushed"), "predictions": stored}
            elif state.get("cleanup_pending"):
                self._drop_older_versions(project_id, state["pushed"])
                outcome = {**state.get("last_push", {}), "status": "ok"}
            else:
                return True
        except Exception as exc:  # noqa: BLE001
            outcome = {"status": "failed", "error": _reason(exc)}
            log.warning("project %s: pushing predictions to Label Studio failed (retried later): %s", project_id,
                        outcome["error"])
        if project.exists:
            outcome.update(seconds=round(time.time() - started, 1),
                           at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            project.write_json(STATE, {**project.read_json(STATE), "last_push": outcome})
        return outcome["status"] == "ok"

    # --- the push -------------------------------------------------------------------------
    def push(self, project_id: str, schema: Schema) -> int:
        """Score the unlabeled tasks with the current version, replace this backend's earlier
        predictions of them in Label Studio, and make the version the project's, so its sort and
        sampling use fresh scores. Returns how many predictions were stored. Call it under the
        project's push lock (`_update_studio`)."""
        started = time.perf_counter()
        project = self.engine.project(project_id)
        pages = [[t for t in page if not t.get("total_annotations")] for page in self.client.task_pages(project_id)]
        unlabeled = [t for page in pages for t in page]
        indices, texts = texts_of(unlabeled, schema, project_id)
        # all texts at once: one version for all, and the cold-start ranking sees the whole pool
        task_ids = [unlabeled[i]["id"] for i in indices]  # they join the project's pool too
        preds = self.engine.predict(project_id, schema, texts, task_ids) if texts else None
        version = preds.version if preds else self.engine.current_version(project_id)
        by_task = {unlabeled[i]["id"]: item for i, item in zip(indices, predictions_json(schema, preds))} if preds else {}
        if version in self.client.model_versions(project_id):
            self.client.delete_model_version(project_id, version)  # a push of it broke off: start clean
        stored = sum(
            self.client.import_predictions(
                project_id, [{"task": t["id"], **by_task[t["id"]]} for t in page if t["id"] in by_task])
            for page in pages
        )
        state = project.read_json(STATE)
        update: Dict[str, object] = {"model_version": version}
        if self.settings.label_studio_set_sampling and not state.get("sampling_set"):
            update["sampling"] = UNCERTAINTY_SAMPLING
        self.client.update_project(project_id, **update)
        state = {**state, "pushed": version, "pushed_at": time.time(), "pushed_labels": _labels_of(project, version),
                 "sampling_set": bool(state.get("sampling_set") or "sampling" in update), "cleanup_pending": True}
        project.write_json(STATE, state)
        pushed = time.perf_counter() - started
        self._drop_older_versions(project_id, version)  # if it fails, the pusher retries just this
        log.info("project %s: pushed %d predictions of %s to Label Studio in %.1f s (older versions' predictions "
                 "deleted in %.1f s)%s", project_id, stored, version, pushed, time.perf_counter() - started - pushed,
                 "; switched it to uncertainty sampling" if "sampling" in update else "")
        return stored

    def _drop_older_versions(self, project_id: str, keep: str) -> None:
        """Delete the predictions of this backend's other versions, one request per version:
        Label Studio then holds at most one prediction of ours per task, and never loses
        predictions from another source."""
        for version in self.client.model_versions(project_id):
            if version != keep and OURS.fullmatch(version):
                self.client.delete_model_version(project_id, version)
        project = self.engine.project(project_id)
        if project.exists:
            project.write_json(STATE, {**project.read_json(STATE), "cleanup_pending": False})


def _labels_of(project: Project, version: str) -> int:
    """How many labels `version` was trained on (0 for the untrained rule or a pruned version)."""
    try:
        return int(project.registry.meta(version).get("n_labels", 0)) if version != UNTRAINED else 0
    except (OSError, ValueError):
        return 0


def _reason(exc: Exception) -> str:
    """An error for logs and /versions: what failed, never a credential nor a server path."""
    return public_error(exc)
