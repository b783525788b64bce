"""The Label Studio side of the loop, with credentials (`LABEL_STUDIO_URL` + `LABEL_STUDIO_API_KEY`).

It subscribes to the engine's events:
* before a run that asks for it (Start training, a project's first label): sync the labels from
  Label Studio, merged with what webhooks stored meanwhile; a failing sync is recorded and the
  run goes on with the stored labels;
* after a version is published, and when Label Studio connects a project whose current version
  it has not received yet: score the unlabeled tasks, store the predictions in Label Studio, make
  that version the project's `model_version` and, once per project, switch it to uncertainty
  sampling (greyed out in the Community UI, honoured by its API).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Dict, Set

from .engine import Engine
from .events import Listener
from .registry import UNTRAINED
from .schema import Schema
from .studio import is_labeled, predictions_json, texts_of
from .studio_client import UNCERTAINTY_SAMPLING, LabelStudioClient

log = logging.getLogger(__name__)

STATE = "studio.json"  # per project: {"pushed": version, "sampling_set": bool}
CONNECT_DELAY = 2.0  # seconds between /setup and the connect push


class StudioLink(Listener):
    def __init__(self, engine: Engine, client: LabelStudioClient, set_sampling: bool = True):
        self.engine = engine
        self.client = client
        self.set_sampling = set_sampling
        self._push_locks: Dict[str, threading.Lock] = {}
        self._connecting: Set[str] = set()  # projects with a connect push on its way
        self._lock = threading.Lock()

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
        try:
            record["pushed"] = self.push(project_id, schema)
        except Exception as exc:  # noqa: BLE001 - the version still serves /predict
            record["push"] = {"status": "failed", "error": _reason(exc)}
            log.warning("project %s: pushing %s's predictions to Label Studio failed: %s", project_id, version,
                        record["push"]["error"])

    def run_finished(self, project_id: str, record: Dict, seconds: float) -> None:
        """A run that published nothing (skipped, failed) still retries a push that failed
        before: Label Studio must not keep an old version's scores until the labels change."""
        if record.get("status") == "published":
            return
        current = self.engine.current_version(project_id)
        if current != UNTRAINED and self.engine.project(project_id).read_json(STATE).get("pushed") != current:
            try:
                self.push(project_id, self.engine.schema(project_id))
            except Exception as exc:  # noqa: BLE001
                log.warning("project %s: pushing %s to Label Studio failed again: %s", project_id, current, _reason(exc))

    def connected(self, project_id: str, schema: Schema) -> None:
        """On /setup: push the current version if Label Studio has not got it (in the background:
        Label Studio waits 3 s for /setup and is itself in the middle of connecting)."""
        if self.engine.project(project_id).read_json(STATE).get("pushed") == self.engine.current_version(project_id):
            return
        with self._lock:  # Label Studio calls /setup twice when it connects: push once
            if project_id in self._connecting:
                return
            self._connecting.add(project_id)
        threading.Thread(target=self._connect_push, args=(project_id, schema), daemon=True,
                         name=f"push-{project_id}").start()

    # --- the push -------------------------------------------------------------------------
    def _connect_push(self, project_id: str, schema: Schema) -> None:
        try:
            time.sleep(CONNECT_DELAY)  # let Label Studio finish connecting (it sets the model version too)
            self.push(project_id, schema)
        except Exception as exc:  # noqa: BLE001
            log.warning("project %s: pushing predictions to Label Studio failed: %s", project_id, _reason(exc))
        finally:
            with self._lock:
                self._connecting.discard(project_id)

    def push(self, project_id: str, schema: Schema) -> int:
        """Score the unlabeled tasks with the current version, store the predictions in Label
        Studio and make that version the project's, so its sort and sampling use fresh scores.
        Returns how many predictions were stored."""
        with self._lock:
            lock = self._push_locks.setdefault(project_id, threading.Lock())
        with lock:
            project = self.engine.project(project_id)
            tasks = [t for t in self.client.tasks(project_id) if not is_labeled(t)]
            indices, texts = texts_of(tasks, schema, project_id)
            version = self.engine.current_version(project_id)
            if texts:
                preds = self.engine.predict(project_id, schema, texts)
                version = preds.version
                items = predictions_json(schema, preds)
                self.client.import_predictions(
                    project_id, [{"task": tasks[i]["id"], **item} for i, item in zip(indices, items)]
                )
            state = project.read_json(STATE)
            update: Dict[str, object] = {"model_version": version}
            if self.set_sampling and not state.get("sampling_set"):
                update["sampling"] = UNCERTAINTY_SAMPLING
            self.client.update_project(project_id, **update)
            project.write_json(STATE, {**state, "pushed": version, "sampling_set": state.get("sampling_set") or "sampling" in update})
            log.info("project %s: pushed %d predictions of %s to Label Studio%s", project_id, len(texts), version,
                     "; switched it to uncertainty sampling" if "sampling" in update else "")
            return len(texts)


def _reason(exc: Exception) -> str:
    """An error for logs and /versions: what failed, never a credential."""
    return f"{type(exc).__name__}: {exc}"
