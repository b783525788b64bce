"""Label Studio ML backend: Bayesian active learning for text classification.

`BaalTextClassifier` is the thin Label Studio adapter: it turns Label Studio's requests and
webhooks into calls on the engine (`baal_backend.Engine`) and the engine's answers into Label
Studio's JSON. One instance serves one project for one request; all state lives in the engine.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

from label_studio_ml.model import LabelStudioMLBase

from baal_backend.engine import Engine
from baal_backend.projects import Refused
from baal_backend.schema import Schema
from baal_backend.studio import (RequestError, dicts, label_from, object_id, predictions_json, project_id,
                                 project_created, source_time, studio_version, texts_of)

log = logging.getLogger("baal_backend.webhook")

#: Webhook actions that change what the model learns from. Label Studio's ML webhook is created
#: with send_for_all_actions, so every other action (TASKS_CREATED, ...) arrives too: ignored.
HANDLED_EVENTS = (
    "ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "ANNOTATIONS_DELETED",
    "TASKS_DELETED", "PROJECT_UPDATED", "PROJECT_DELETED", "START_TRAINING",
)


class BaalTextClassifier(LabelStudioMLBase):
    """MC-Dropout text classifier whose prediction `score` ranks tasks for labeling."""

    TRAIN_EVENTS = HANDLED_EVENTS

    def __init__(self, engine: Engine, project: Any, label_config: Optional[str] = None,
                 config_is_current: bool = True, **kwargs: Any):
        super().__init__(**kwargs)  # the config is parsed (and validated) by the engine, once
        self.engine = engine
        self.project = project_id(project)
        self._created = project_created(project)  # only /setup and /predict act on it (`_identify`)
        self.label_config = label_config
        self._config_is_current = config_is_current
        self._schema: Optional[Schema] = None

    @property
    def schema(self) -> Schema:
        """The project's Choices/Text pair (`SchemaError` says why a config cannot be served)."""
        if self._schema is None:
            self._schema = self.engine.schema(self.project, self.label_config, self._config_is_current)
        return self._schema

    @property
    def model_version(self) -> str:
        """The current version as Label Studio names it (`studio_version`)."""
        return studio_version(self.engine.current_version(self.project), self.engine.instance)

    def setup(self) -> str:
        """Label Studio connects the project: remember its config, answer the current version."""
        self._identify()
        self.engine.events.emit("connected", self.project, self.schema)
        return self.model_version

    def predict(self, tasks: List[Dict], **kwargs: Any) -> List[Dict]:
        """One prediction per task, in order; a task without usable text gets an empty result."""
        self._identify()
        indices, texts = texts_of(tasks, self.schema, self.project)
        task_ids = [tasks[i].get("id") for i in indices]  # texts_of kept only dict tasks
        preds = self.engine.predict(self.project, self.schema, texts, task_ids) if texts else None
        version = studio_version(preds.version, self.engine.instance) if preds else self.model_version
        results: List[Dict] = [{"result": [], "score": None, "model_version": version} for _ in tasks]
        if preds:
            for i, item in zip(indices, predictions_json(self.schema, preds, self.engine.instance)):
                results[i] = item
        return results

    def _identify(self) -> None:
        """Label Studio's own requests (/setup, /predict) say which project this id is now; a
        webhook's word is not taken (its token is readable by the organisation)."""
        self.engine.identify(self.project, self._created)

    def process_event(self, event: str, data: Dict, job_id: Any = None, additional_params: Any = None) -> Dict:
        """Mirror the event in the label store, ask for a training run when labels changed, and
        log one line saying what happened."""
        handler = getattr(self, f"_on_{event.lower()}", None) if event in HANDLED_EVENTS else None
        if handler is None:
            log.info("webhook %s, project %s: ignored", event, self.project)
            return {"status": "ignored", "action": event}
        try:
            summary, train, sync = handler(data)
        except Refused as exc:
            log.warning("webhook %s, project %s: refused: %s", event, self.project, exc)
            return {"status": "refused", "action": event, "reason": str(exc)}
        reply: Dict[str, Any] = {"status": "ok", "action": event}
        if train:
            reply["training"] = self.fit(sync=sync)["training"]
        log.info("webhook %s, project %s: %s%s", event, self.project, summary,
                 f"; training {reply['training']}" if train else "")
        return reply

    def fit(self, tasks: Any = (), workdir: Any = None, sync: bool = False, **kwargs: Any) -> Dict:
        """Training never runs inside the request: this queues a background run."""
        return {"training": self.engine.request_training(self.project, sync=sync)}

    # --- one handler per webhook action: (what happened, train?, sync first?) ----------------
    def _on_annotation_created(self, data: Dict) -> Tuple[str, bool, bool]:
        annotation, task = data.get("annotation"), data.get("task")
        if not isinstance(annotation, dict) or "id" not in annotation:
            raise RequestError("the webhook has no annotation object with an id")
        label = label_from(annotation, task if isinstance(task, dict) else {}, self.schema)
        if label is None:  # cancelled, emptied or not a choice of ours: no longer a label
            aid = object_id(annotation["id"], "the annotation's id")
            emptied_at = source_time(annotation.get("updated_at"), f"annotation {aid}'s updated_at")
            removed = self.engine.delete_labels(self.project, [aid], emptied_at=emptied_at)
            return f"annotation {aid} carries no label ({removed} removed)", removed > 0, False
        written, first = self.engine.store_labels(self.project, [label])
        if not written:
            late = f"annotation {label.annotation_id}: a late event (a newer edit or its deletion is stored), ignored"
            return late, False, False
        return f"stored annotation {label.annotation_id} = {label.label!r}", True, first

    _on_annotation_updated = _on_annotation_created

    def _on_annotations_created(self, data: Dict) -> Tuple[str, bool, bool]:
        """Bulk ("Create Annotations From Predictions"): `annotation` and `task` are lists."""
        annotations = data.get("annotation")
        if not isinstance(annotations, list):
            raise RequestError("ANNOTATIONS_CREATED needs a list of annotations under 'annotation'")
        by_id = {t.get("id"): t for t in dicts(data.get("task")) if isinstance(t.get("id"), (int, str))}
        labels = []
        for annotation in dicts(annotations):
            task = by_id.get(annotation.get("task")) if isinstance(annotation.get("task"), (int, str)) else None
            label = label_from(annotation, task or {}, self.schema)
            if label is not None:
                labels.append(label)
        written, first = self.engine.store_labels(self.project, labels) if labels else (0, False)
        return f"stored {written} of {len(annotations)} annotations", written > 0, first

    def _on_annotation_deleted(self, data: Dict) -> Tuple[str, bool, bool]:
        gone = dicts(data.get("annotations")) or dicts(data.get("annotation"))
        ids = [object_id(a.get("id"), "a deleted annotation's id") for a in gone]
        removed = self.engine.delete_labels(self.project, ids)
        return f"removed {removed} of {len(ids)} annotations", removed > 0, False

    _on_annotations_deleted = _on_annotation_deleted

    def _on_tasks_deleted(self, data: Dict) -> Tuple[str, bool, bool]:
        """Deleting tasks deletes their annotations without an ANNOTATIONS_DELETED."""
        ids = [object_id(t.get("id"), "a deleted task's id") for t in dicts(data.get("tasks"))]
        removed = self.engine.delete_tasks(self.project, ids)
        return f"{len(ids)} tasks deleted, {removed} of their labels removed", removed > 0, False

    def _on_project_updated(self, data: Dict) -> Tuple[str, bool, bool]:
        """Label config edits arrive here; `schema` queues a retrain when the classes changed."""
        return f"label config with {len(self.schema.labels)} classes", False, False

    def _on_project_deleted(self, data: Dict) -> Tuple[str, bool, bool]:
        """The state goes to the trash (`Refused` when Label Studio still has the project)."""
        trashed = self.engine.delete_project(self.project)
        return "state moved to the trash" if trashed else "no state to remove", False, False

    def _on_start_training(self, data: Dict) -> Tuple[str, bool, bool]:
        return "requested", True, True
