"""One push of a version's predictions to Label Studio (`PredictionPush.push`), and the link's
state file per project (`STATE`).

A push lists every task (paged by Label Studio's own `total`), scores the unlabeled ones, and
stores the scores without deleting anything: an annotator's open task keeps the prediction it was
pre-filled from, other sources' predictions are never touched, and a push that falls short fails
while the previous version's predictions stay whole. Then it makes the version the project's
`model_version`, only while the project shows one of ours (a version a person picked, or
prelabeling switched off, stays), once per project also switching it to uncertainty sampling
(greyed out in the Community UI, honoured by its API).
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

from .engine import Engine
from .project import Project
from .registry import UNTRAINED
from .schema import Schema
from .settings import Settings
from .studio import predictions_json, studio_version, texts_of
from .studio_client import PAGE_SIZE, UNCERTAINTY_SAMPLING, LabelStudioClient, PushError

log = logging.getLogger(__name__)

#: Per project: "ours" (every model version name this backend stored predictions under: the only
#: ones it ever rewrites), "live" (the name of its last complete push), "pushed" (that version),
#: "pushed_at", "pushed_labels", "sampling_set", "webhook_auth", "last_push".
STATE = "studio.json"
REWRITE_THREADS = 4  # predictions rewritten in place at once (Label Studio takes one per request)


class PredictionPush:
    def __init__(self, engine: Engine, client: LabelStudioClient, settings: Settings):
        self.engine = engine
        self.client = client
        self.settings = settings

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
