"""The Label Studio side of the loop, with credentials (`LABEL_STUDIO_URL` + `LABEL_STUDIO_API_KEY`).

It subscribes to the engine's events:
* before a run that asks for it (Start training, a project's first label): sync the labels from
  Label Studio, merged with what webhooks stored meanwhile; a failing sync is recorded and the
  run goes on with the stored labels;
* after a version is published (at most every PUSH_EVERY_LABELS labels or PUSH_EVERY_SECONDS
  seconds; a push held back runs when the time is up), and when Label Studio connects a project
  whose current version it has not received yet: push, on one pusher thread per project, so a
  long push never holds the training lock (the next run goes on meanwhile) and the pushes asked
  for while one runs coalesce into one push of the newest version. A push lists every task
  (paged by Label Studio's own `total`), scores the unlabeled ones, and stores the scores
  without deleting anything (`push`): an annotator's open task keeps the prediction it was
  pre-filled from, other sources' predictions are never touched, and a push that falls short
  is recorded as failed and retried while the previous version's predictions stay whole. Then it
  makes the version the project's `model_version`, only while the project shows one of ours (a
  version a person picked, or prelabeling switched off, stays), once per project also switching
  it to uncertainty sampling (greyed out in the Community UI, honoured by its API).
* at start-up and every RECONCILE_SECONDS, on one thread per process: Label Studio never retries a
  webhook, so a label whose webhook failed or came while the backend was down would be missing
  for good. A cheap check (`reconcile`: two small reads, no export) asks for a sync only when
  Label Studio shows changes that the stored labels lack.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Set, Tuple

from .auth import webhook_token
from .engine import Engine
from .events import Listener
from .logs import public_error
from .project import Project
from .registry import UNTRAINED
from .schema import Schema
from .settings import Settings
from .studio import predictions_json, project_created, source_time, studio_version, texts_of
from .studio_client import PAGE_SIZE, UNCERTAINTY_SAMPLING, Activity, LabelStudioClient, PushError

log = logging.getLogger(__name__)

#: Per project: "ours" (every model version name this backend stored predictions under: the only
#: ones it ever rewrites), "live" (the name of its last complete push), "pushed" (that version),
#: "pushed_at", "pushed_labels", "sampling_set", "webhook_auth", "last_push".
STATE = "studio.json"
REWRITE_THREADS = 4  # predictions rewritten in place at once (Label Studio takes one per request)
CONNECT_DELAY = 2.0  # seconds between /setup and the connect push
RETRY_SECONDS, MAX_RETRY_SECONDS = 30.0, 1800.0  # a failed push is retried, backing off to this
BUSY_RETRY_SECONDS = 10.0  # another process is pushing the project: look again this much later
PUSH_LOCK = "push.lock"
#: Per project, written by each sync: "since" (Label Studio's newest annotated task before the
#: export, moved on by each check that finds nothing missing) and "offset" (its annotations that
#: are no label here: other tags', emptied, ...). Its own file: the pusher thread owns STATE.
RECONCILE_STATE = "reconcile.json"
STOP_WAIT = 5.0  # seconds a stopping process waits for a reconcile check under way


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
        self._stopped = threading.Event()  # the reconciler's stop signal
        self._reconciler: Optional[threading.Thread] = None
        self._asked: Set[str] = set()  # projects whose sync the reconciler asked for has not run yet

    # --- events ---------------------------------------------------------------------------
    def run_starting(self, project_id: str, schema: Schema, sync: bool, record: Dict) -> None:
        if not sync:
            return
        started = time.time()
        mark = self._activity(project_id)  # before the export: whatever it is older than, the export has
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
        self._synced(project_id, mark)

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
            if not self._same_project(project_id):
                return "done"  # Label Studio's project of this id is another one: the old state is in the trash
            if authorize:
                self._authorize_webhook(project_id)
            return "done" if self._push_quietly(project_id) else "failed"

    def _same_project(self, project_id: str) -> bool:
        """Whether Label Studio's project of this id is still the one stored here (`identify`,
        with Label Studio's own creation time): never push an old project's model into a new
        project that reuses its id. Unknown (Label Studio unreachable) counts as the same."""
        try:
            created = project_created(self.client.project(project_id))
        except Exception:  # noqa: BLE001 - the push itself fails and is retried
            return True
        self.engine.identify(project_id, created, confirmed=True)
        return self.engine.project(project_id).exists

    def identifying(self, project_id: str, created: int, objections: List[str]) -> None:
        """A request names another creation time for the project: only Label Studio's word counts."""
        try:
            actual = project_created(self.client.project(project_id))
        except Exception as exc:  # noqa: BLE001 - unconfirmed: keep what is stored
            objections.append(f"Label Studio cannot confirm it: {_reason(exc)}")
            return
        if actual != created:
            objections.append(f"Label Studio says project {project_id} was created at {actual}")

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
        if "sync" in record:  # a sync ran (or failed): the reconciler may ask for another
            with self._lock:
                self._asked.discard(project_id)
        if record.get("status") == "published" or project_id in self._due:
            return
        if self.engine.current_version(project_id) != UNTRAINED and self._behind(project_id):
            self._schedule(project_id, 0.0)

    def _behind(self, project_id: str) -> bool:
        """Label Studio lacks the current version's predictions."""
        return self.engine.project(project_id).read_json(STATE).get("pushed") != self.engine.current_version(project_id)

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

    def deleting(self, project_id: str, objections: List[str]) -> None:
        """PROJECT_DELETED: only a project Label Studio no longer has may go to the trash. An
        unauthenticated backend takes any POST; a forged one must not delete a live project."""
        try:
            exists = self.client.project_exists(project_id)
        except Exception as exc:  # noqa: BLE001 - Label Studio down, 401, ...: keep the project
            objections.append(f"Label Studio cannot confirm that project {project_id} is gone: {_reason(exc)}")
            return
        if exists:
            objections.append(f"Label Studio still has project {project_id}")

    def _auth_digest(self) -> str:
        """Which credentials the webhook header was set for (never the credentials themselves).
        Salted "webhook-token" since the header carries the webhook's own token: a digest of the
        clear Basic header's time no longer matches, so that header is replaced."""
        secret = f"{self.settings.basic_auth_user}:{self.settings.basic_auth_pass}".encode()
        return hashlib.sha256(b"webhook-token\0" + secret).hexdigest()[:16]

    def _authorize_webhook(self, project_id: str) -> None:
        """Give the project's webhooks that Label Studio made for a model connected with our
        basic-auth user the webhook's own token (`Authorization: Bearer ...`, good for /webhook
        only: every member of the organisation can read a webhook's headers); without it every
        webhook would get a 401. It replaces a clear `Basic` header set before."""
        try:
            header = "Bearer " + webhook_token(self.settings.basic_auth_user, self.settings.basic_auth_pass)
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
            log.info("project %s: webhook token set on %d webhook(s) of this backend", project_id, fixed)
        except Exception as exc:  # noqa: BLE001
            log.warning("project %s: could not set the webhook token on the webhook: %s", project_id, _reason(exc))

    def _push_quietly(self, project_id: str) -> bool:
        """Push the current version if Label Studio has not got it. Records the outcome
        (`/versions` shows it as `push`; a failure also in `/health` until a push succeeds);
        False when it failed (retried later)."""
        project = self.engine.project(project_id)
        if project.read_json(STATE).get("pushed") == self.engine.current_version(project_id):
            return True
        started = time.time()
        try:
            outcome = {"status": "ok", **self.push(project_id, self.engine.schema(project_id))}
        except Exception as exc:  # noqa: BLE001
            outcome = {"status": "failed", "error": _reason(exc)}
            log.warning("project %s: pushing predictions to Label Studio failed (retried later; its previous "
                        "predictions stay): %s", project_id, outcome["error"])
        if project.exists:
            outcome.update(seconds=round(time.time() - started, 1),
                           at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            project.write_json(STATE, {**project.read_json(STATE), "last_push": outcome})
        return outcome["status"] == "ok"

    # --- missed webhooks -------------------------------------------------------------------
    def serving(self) -> None:
        """This process serves: push what Label Studio is behind on (`resume`), reconcile every
        project now, then every RECONCILE_SECONDS, on one thread (started here, not with the
        link: the process that built it may fork the server, and must not push or load models)."""
        self.resume()
        with self._lock:
            if self._reconciler is not None and self._reconciler.is_alive():
                return
            self._stopped.clear()
            self._reconciler = threading.Thread(target=self._reconcile_loop, daemon=True, name="reconcile")
            self._reconciler.start()

    def stopping(self) -> None:
        """End the reconciler; a check under way finishes first (waited for up to STOP_WAIT s)."""
        self._stopped.set()
        thread = self._reconciler
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT)

    def _reconcile_loop(self) -> None:
        while not self._stopped.is_set():
            self.reconcile_all()
            self._stopped.wait(self.settings.reconcile_seconds)

    def reconcile_all(self) -> List[str]:
        """One check of every project with state (`reconcile`); returns those a sync was asked
        for. A check that fails is logged once and shown in `/health` until one succeeds."""
        root = self.settings.model_dir / "projects"
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
                self.engine.problems.pop(key, None)
            except Exception as exc:  # noqa: BLE001 - Label Studio down, 401, ...: checked again next time
                problem = (f"project {path.name}: cannot check Label Studio for labels whose webhook was lost "
                           f"(tried again every {self.settings.reconcile_seconds:g} s): {_reason(exc)}")
                if self.engine.problems.get(key) != problem:
                    log.warning("%s", problem)
                self.engine.problems[key] = problem
        for key in [k for k in list(self.engine.problems) if k.startswith("reconcile:")]:
            if not (root / key.split(":", 1)[1]).is_dir():  # the project went (trashed): so did its problem
                self.engine.problems.pop(key, None)
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

    def _activity(self, project_id: str) -> Optional[Activity]:
        """`LabelStudioClient.activity` of the whole project; None when it cannot be read (logged)."""
        try:
            return self.client.activity(project_id)
        except Exception as exc:  # noqa: BLE001 - the sync goes on; the next check syncs again
            log.warning("project %s: cannot read Label Studio's annotation count: %s", project_id, _reason(exc))
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

    # --- the push -------------------------------------------------------------------------
    def push(self, project_id: str, schema: Schema) -> Dict:
        """Score the unlabeled tasks with the current version and store the scores in Label
        Studio without deleting anything: each task keeps the prediction of ours that is live
        (the last complete push), and the new one goes into the task's other prediction of ours,
        rewritten in place so its id survives (an annotator whose open task was pre-filled from
        it still saves), or into a new one. Only when every unlabeled task is covered does the
        version become the project's (`_make_current`). Call it under the project's push lock."""
        started = time.perf_counter()
        project = self.engine.project(project_id)
        unlabeled = [t for t in self.client.tasks(project_id) if not t.get("total_annotations")]
        indices, texts = texts_of(unlabeled, schema, project_id)
        # all texts at once: one version for all, and the cold-start ranking sees the whole pool
        task_ids = [unlabeled[i]["id"] for i in indices]  # they join the project's pool too
        preds = self.engine.predict(project_id, schema, texts, task_ids) if texts else None
        version = preds.version if preds else self.engine.current_version(project_id)
        name = studio_version(version, self.engine.instance)
        state = _state(project)
        # recorded before anything is stored: a push cut off midway still knows its rows are ours
        project.write_json(STATE, {**state, "ours": sorted(set(state["ours"]) | {name})})
        items = dict(zip(task_ids, predictions_json(schema, preds, self.engine.instance))) if preds else {}
        shown = self.client.project(project_id)
        rewrite, new = self._plan(project_id, items, state, name, shown.get("model_version") or "")
        rewritten, lost = self._rewrite(rewrite)
        new += [{"task": task, **items[task]} for task in lost]  # a prediction deleted meanwhile: a new one
        imported = vanished = 0
        for start in range(0, len(new), PAGE_SIZE):
            stored, gone = self.client.import_predictions(project_id, new[start:start + PAGE_SIZE])
            imported, vanished = imported + stored, vanished + len(gone)
        if rewritten + imported + vanished < len(items):  # the client raises first; a last guard
            raise PushError(f"stored {rewritten + imported} of {len(items)} predictions")
        current = self._make_current(project_id, name, state, shown) if rewritten + imported else \
            {"made_current": False, "note": "no unlabeled task to score: the project's version stays"}
        project.write_json(STATE, {**_state(project), "pushed": version, "live": name, "pushed_at": time.time(),
                                   "pushed_labels": _labels_of(project, version),
                                   "sampling_set": bool(state.get("sampling_set") or current.get("sampling"))})
        log.info("project %s: pushed %d predictions of %s to Label Studio in %.1f s (%d rewritten in place, %d new, "
                 "%d tasks vanished); %s", project_id, rewritten + imported, name, time.perf_counter() - started,
                 rewritten, imported, vanished, current["note"])
        return {"version": version, "studio_version": name, "predictions": rewritten + imported,
                "rewritten": rewritten, "new": imported, "vanished": vanished, **current}

    def _plan(self, project_id: str, items: Dict[int, Dict], state: Dict, name: str, shown: str
              ) -> Tuple[List[Tuple[int, Dict]], List[Dict]]:
        """Per task: (prediction id to rewrite, its new content), or a new prediction. The row
        rewritten is one of ours that is neither live nor the one the project shows (a person may
        have picked an older version of ours): one of `name` left by a push cut off, else an
        older version's. Rows of other sources are never touched."""
        keep = {state.get("live"), shown}
        spare: Dict[int, Dict] = {}
        for row in self.client.predictions(project_id):
            task, version = row.get("task"), row.get("model_version")
            if task in items and self._ours(version, state) and version not in keep:
                if spare.get(task, {}).get("model_version") != name:
                    spare[task] = row
        # the task goes along: Label Studio validates a result against its task's project
        rewrite = [(spare[t]["id"], {"task": t, **item}) for t, item in items.items() if t in spare]
        return rewrite, [{"task": t, **item} for t, item in items.items() if t not in spare]

    def _rewrite(self, rewrite: List[Tuple[int, Dict]]) -> Tuple[int, List[int]]:
        """Rewrite predictions in place, a few requests at once (Label Studio takes one per
        request); (rewritten, tasks whose prediction was gone: deleted with its task, or by a
        person, which the import tells apart)."""
        if not rewrite:
            return 0, []
        with ThreadPoolExecutor(REWRITE_THREADS, thread_name_prefix="push-rewrite") as pool:
            done = list(pool.map(lambda job: self.client.update_prediction(*job), rewrite))
        return sum(done), [fields["task"] for (_, fields), ok in zip(rewrite, done) if not ok]

    def _make_current(self, project_id: str, name: str, state: Dict, settings: Dict) -> Dict:
        """Make `name` the project's model version (the one its sort, sampling and pre-fill use),
        but only while the project's version is already one of ours, or, before this backend's
        first push to it, the placeholder Label Studio sets on connect (the model's title, or
        nothing). A version a person picked (another source's, an older one of ours, or none:
        prelabeling switched off) stays. Once per project, also switch it to uncertainty
        sampling. `settings`: the project's, read before the push."""
        shown = settings.get("model_version") or ""
        placeholder = not state.get("live") and (
            shown == "" or shown in {m.get("title") for m in self.client.ml_backends(project_id)})
        if settings.get("show_collab_predictions") is False or not (shown in (state.get("live"), name) or placeholder):
            why = "prelabeling is off" if settings.get("show_collab_predictions") is False else \
                f"the project shows {shown!r}, picked in Label Studio"
            return {"made_current": False, "note": f"not made the project's version: {why}"}
        update: Dict[str, object] = {"model_version": name}
        if self.settings.label_studio_set_sampling and not state.get("sampling_set"):
            update["sampling"] = UNCERTAINTY_SAMPLING
        self.client.update_project(project_id, **update)
        note = "made the project's version" + ("; switched it to uncertainty sampling" if "sampling" in update else "")
        return {"made_current": True, "sampling": "sampling" in update, "note": note}


    def _ours(self, version: object, state: Dict) -> bool:
        """A model version this backend made: named with its instance (`studio_version`: only
        this MODEL_DIR makes such names), or recorded as pushed by an earlier release."""
        return isinstance(version, str) and (version.endswith(f"@{self.engine.instance}") or version in state["ours"])


def push_problem(project: Project) -> Optional[str]:
    """What `/health` and the report say when the project's last push failed (read from its
    state file: with Redis the push runs in the worker, and every replica reads the same)."""
    last = project.read_json(STATE).get("last_push") or {}
    if last.get("status") != "failed":
        return None
    return (f"project {project.id}: the push to Label Studio failed at {last.get('at')} (retried; the previous "
            f"predictions stay): {last.get('error')}")


def _state(project: Project) -> Dict:
    """The project's link state, with what earlier releases kept: their last pushed version,
    named without an instance, was this backend's own (their only record of it)."""
    state = project.read_json(STATE)
    if "ours" not in state:  # `v0000` is every backend's untrained rule: never proof of ours
        old = state.get("pushed") if state.get("pushed") not in (None, UNTRAINED) else None
        state = {**state, "ours": [old] if old else [], "live": old}
    return state


def _labels_of(project: Project, version: str) -> int:
    """How many labels `version` was trained on (0 for the untrained rule or a pruned version)."""
    try:
        return int(project.registry.meta(version).get("n_labels", 0)) if version != UNTRAINED else 0
    except (OSError, ValueError):
        return 0


def _reason(exc: Exception) -> str:
    """An error for logs and /versions: what failed, never a credential nor a server path."""
    return public_error(exc)


def missed_webhooks(settings: Settings) -> str:
    """What becomes of a label whose webhook was lost (`/health`): Label Studio never retries one."""
    if settings.label_studio_enabled:
        return (f"recovered: the labels are checked against Label Studio at start-up and every "
                f"{settings.reconcile_seconds:g} s (RECONCILE_SECONDS), and synced when one is missing")
    return ("not recovered: Label Studio never retries a webhook, so a label whose webhook failed or came while the "
            "backend was down stays missing; set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to recover them")
