"""The Label Studio side: its JSON <-> our domain objects, and a small REST client.

This is the one engine module that knows Label Studio's formats, so the adapter
(`label_studio_baal_hf.py`) and the label sync share the same parsing.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import requests

from .labels import Label
from .schema import Schema

log = logging.getLogger(__name__)


class RequestError(ValueError):
    """A request from Label Studio lacks something the backend needs."""


def project_id(value: Any) -> str:
    """Label Studio names a project as `"1.1795516926"` (/setup, /predict), `1` or `{"id": 1}`."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or value is None:
        raise RequestError("the request names no project")
    text = str(value).split(".", 1)[0].strip()
    if not text.isdigit():
        raise RequestError(f"project {value!r} is not a Label Studio project id")
    return str(int(text))


def task_text(task: Any, schema: Schema) -> str:
    """The task's text, or `RequestError` saying why it has none."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise RequestError("the task has no data object")
    text = task["data"].get(schema.text_key)
    if text is None:
        raise RequestError(f"the task's data has no {schema.text_key!r} field")
    if not isinstance(text, str):
        raise RequestError(f"the task's {schema.text_key!r} is a {type(text).__name__}, not text")
    if not text.strip():
        raise RequestError(f"the task's {schema.text_key!r} is empty")
    return text


def annotation_choice(annotation: Dict, schema: Schema) -> Optional[str]:
    """The class an annotation gives, or None when it gives none we serve (cancelled, other tags)."""
    if annotation.get("was_cancelled"):
        return None
    for region in annotation.get("result") or []:
        if not isinstance(region, dict) or region.get("from_name") != schema.from_name:
            continue
        choices = (region.get("value") or {}).get("choices") or []
        if len(choices) == 1 and choices[0] in schema.labels:
            return choices[0]
        if choices:
            log.warning("annotation %s: choice %r is not in the label config", annotation.get("id"), choices)
    return None


def label_from(annotation: Dict, task: Dict, schema: Schema) -> Optional[Label]:
    """A `Label` from an annotation and its task, or None when it carries no usable label."""
    choice = annotation_choice(annotation, schema)
    if choice is None:
        return None
    task_id = annotation.get("task") or task.get("id")
    if annotation.get("id") is None or task_id is None:
        raise RequestError("the annotation has no id or task id")
    try:
        text = task_text(task, schema)
    except RequestError as exc:
        log.warning("annotation %s not stored: %s", annotation.get("id"), exc)
        return None
    return Label(annotation_id=int(annotation["id"]), task_id=int(task_id), text=text, label=choice)


def texts_of(tasks: Sequence[Any], schema: Schema, project: str) -> Tuple[List[int], List[str]]:
    """(indices, texts) of the tasks that have usable text; the others are logged with the reason."""
    indices: List[int] = []
    texts: List[str] = []
    for i, task in enumerate(tasks):
        try:
            texts.append(task_text(task, schema))
            indices.append(i)
        except RequestError as exc:
            task_id = task.get("id") if isinstance(task, dict) else None
            log.warning("project %s, task %s: no prediction: %s", project, task_id, exc)
    return indices, texts


def predictions_json(schema: Schema, preds: Any) -> List[Dict]:
    """`engine.Predictions` as Label Studio stores them: the choice, its probability, the score."""
    out = []
    for row in range(len(preds.scores)):
        label, probability = preds.best(row)
        region = {
            "from_name": schema.from_name,
            "to_name": schema.to_name,
            "type": "choices",
            "value": {"choices": [label]},
            "score": probability,
        }
        out.append({"result": [region], "score": float(preds.scores[row]), "model_version": preds.version})
    return out


class LabelStudioClient:
    """Label Studio's REST API with either token kind.

    A legacy token is sent as `Token <key>`. A personal access token (a JWT refresh token) is
    exchanged at `/api/token/refresh` for a short-lived access token, renewed on expiry or 401.
    """

    def __init__(self, url: str, api_key: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.session = requests.Session()
        self._access: Optional[str] = None
        self._access_until = 0.0
        self._lock = threading.Lock()

    @property
    def uses_personal_token(self) -> bool:
        return self.api_key.count(".") == 2

    def _auth(self, refresh: bool = False) -> str:
        if not self.uses_personal_token:
            return f"Token {self.api_key}"
        with self._lock:
            if refresh or not self._access or time.time() > self._access_until:
                resp = self.session.post(
                    f"{self.url}/api/token/refresh", json={"refresh": self.api_key}, timeout=self.timeout
                )
                resp.raise_for_status()
                self._access = resp.json()["access"]
                self._access_until = time.time() + 240  # access tokens live 5 minutes
            return f"Bearer {self._access}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        resp = self.session.request(
            method, f"{self.url}{path}", headers={"Authorization": self._auth()}, timeout=self.timeout, **kwargs
        )
        if resp.status_code == 401 and self.uses_personal_token:
            resp = self.session.request(
                method,
                f"{self.url}{path}",
                headers={"Authorization": self._auth(refresh=True)},
                timeout=self.timeout,
                **kwargs,
            )
        resp.raise_for_status()
        return resp

    def tasks(self, project: str, annotated_only: bool = False) -> List[Dict]:
        """A project's tasks with their annotations (Label Studio's JSON export)."""
        params = {"exportType": "JSON", "download_all_tasks": "false" if annotated_only else "true"}
        return self.request("GET", f"/api/projects/{project}/export", params=params).json()

    def labels(self, project: str, schema: Schema) -> List[Label]:
        """Every usable label of a project."""
        found: List[Label] = []
        for task in self.tasks(project, annotated_only=True):
            for annotation in task.get("annotations") or []:
                label = label_from({**annotation, "task": task.get("id")}, task, schema)
                if label is not None:
                    found.append(label)
        return found

    def import_predictions(self, project: str, predictions: List[Dict], chunk: int = 500) -> None:
        """Store predictions (`{"task": id, "result", "score", "model_version"}`) in bulk."""
        for start in range(0, len(predictions), chunk):
            self.request("POST", f"/api/projects/{project}/import/predictions", json=predictions[start : start + chunk])

    def set_model_version(self, project: str, version: str) -> None:
        """Make Label Studio sort and sample by this version's prediction scores."""
        self.request("PATCH", f"/api/projects/{project}", json={"model_version": version})


def is_labeled(task: Dict) -> bool:
    """A task with at least one annotation that was not skipped."""
    return any(not a.get("was_cancelled") for a in task.get("annotations") or [])
