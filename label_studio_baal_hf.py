"""Label Studio ML backend: Bayesian active learning for text classification.

`BaalTextClassifier` is the thin Label Studio adapter: it turns Label Studio's requests into calls
on the engine (`baal_backend.Engine`) and the engine's answers into Label Studio's JSON. One
instance serves one project for one request; all state lives in the engine.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from label_studio_ml.model import LabelStudioMLBase

from baal_backend.engine import Engine
from baal_backend.studio import RequestError, label_from, predictions_json, project_id, texts_of


TRAIN_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "ANNOTATIONS_DELETED", "START_TRAINING")


class BaalTextClassifier(LabelStudioMLBase):
    """MC-Dropout text classifier whose prediction `score` ranks tasks for labeling."""

    TRAIN_EVENTS = TRAIN_EVENTS

    def __init__(self, engine: Engine, project: Any, label_config: Optional[str] = None, **kwargs: Any):
        self.engine = engine
        self.project = project_id(project)
        self.schema = engine.schema(self.project, label_config)  # SchemaError names what is wrong
        super().__init__(label_config=label_config or engine.project(self.project).label_config, **kwargs)

    @property
    def model_version(self) -> str:
        return self.engine.current_version(self.project)

    def predict(self, tasks: List[Dict], **kwargs: Any) -> List[Dict]:
        """One prediction per task, in order; a task without usable text gets an empty result."""
        indices, texts = texts_of(tasks, self.schema, self.project)
        preds = self.engine.predict(self.project, self.schema, texts) if texts else None
        version = preds.version if preds else self.model_version
        results: List[Dict] = [{"result": [], "score": None, "model_version": version} for _ in tasks]
        if preds:
            for i, item in zip(indices, predictions_json(self.schema, preds)):
                results[i] = item
        return results

    def process_event(self, event: str, data: Dict, job_id: Any = None, additional_params: Any = None) -> Dict:
        """Store or remove the label an annotation event carries, then ask for a training run."""
        if event not in TRAIN_EVENTS:
            return {"status": "ignored", "action": event}
        sync = event == "START_TRAINING"
        if event in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            annotation, task = data.get("annotation"), data.get("task") or {}
            if not isinstance(annotation, dict) or "id" not in annotation:
                raise RequestError(f"{event} without an annotation object with an id")
            label = label_from(annotation, task, self.schema)
            if label is None:  # cancelled, emptied or not a choice of ours: no longer a label
                self.engine.delete_labels(self.project, [annotation["id"]])
            else:
                sync = self.engine.store_labels(self.project, [label])
        elif event in ("ANNOTATION_DELETED", "ANNOTATIONS_DELETED"):
            gone = data.get("annotations") or [data.get("annotation") or {}]
            self.engine.delete_labels(self.project, [a["id"] for a in gone if isinstance(a, dict) and "id" in a])
        return {"status": "ok", "action": event, "training": self.fit(sync=sync)["training"]}

    def fit(self, tasks: Any = (), workdir: Any = None, sync: bool = False, **kwargs: Any) -> Dict:
        """Training never runs inside the request: this queues a background run."""
        return {"training": self.engine.request_training(self.project, sync=sync)}

