"""The Label Studio side: its JSON <-> our domain objects, and a small REST client.

This is the one engine module that knows Label Studio's formats, so the adapter
(`label_studio_baal_hf.py`) and the label sync share the same parsing.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Optional

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


def prediction(schema: Schema, label: str, probability: float, score: Optional[float], version: str) -> Dict:
    """One task's prediction as Label Studio stores it."""
    return {
        "result": [
            {
                "from_name": schema.from_name,
                "to_name": schema.to_name,
                "type": "choices",
                "value": {"choices": [label]},
                "score": probability,
            }
        ],
        "score": score,
        "model_version": version,
    }


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

    def labels(self, project: str, schema: Schema) -> List[Label]:
        """Every usable label of a project, from its JSON export of annotated tasks."""
        tasks = self.request(
            "GET", f"/api/projects/{project}/export", params={"exportType": "JSON", "download_all_tasks": "false"}
        ).json()
        found: List[Label] = []
        for task in tasks:
            for annotation in task.get("annotations") or []:
                label = label_from({**annotation, "task": task.get("id")}, task, schema)
                if label is not None:
                    found.append(label)
        return found
