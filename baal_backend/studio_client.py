"""Label Studio's REST API: a small client for the label sync and the prediction push."""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

import requests

from .labels import Label
from .schema import Schema
from .studio import label_from, project_created

log = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
PAGE_SIZE = 500  # tasks per listed page, predictions per import request
EXPORT_TIMEOUT = 300.0  # the label sync's export of every annotated task
BULK_TIMEOUT = 300.0  # listing every prediction of a large project


class PushError(RuntimeError):
    """Label Studio did not take what a push sent (a listing cut short, predictions refused or
    dropped): the push is recorded as failed and retried, and nothing older is touched."""


@dataclass(frozen=True)
class Activity:
    """Where a project's annotations stand in Label Studio, read without an export.

    `annotations`: its annotations that are not skips (other tags', empty ones and ground truths
    included); `changed_tasks`: its tasks with such annotations whose `updated_at` is after the
    time asked about (every one without a time); `newest`: the latest of those `updated_at`s, in
    the form the Data Manager's filters take (None: no such task). Label Studio sets a task's
    `updated_at` after each save of one of its annotations (and of a prediction saved alone, not
    on a bulk import).
    """

    annotations: int
    changed_tasks: int
    newest: Optional[str]
    created: Optional[int] = None  # when Label Studio created the project (`project_created`)


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

    def request(self, method: str, path: str, allow: Tuple[int, ...] = (), timeout: Optional[float] = None,
                **kwargs) -> requests.Response:
        """One API call; an HTTP error raises unless its status is in `allow`."""
        def send(refresh: bool) -> requests.Response:
            return self.session.request(method, f"{self.url}{path}", headers={"Authorization": self._auth(refresh)},
                                        timeout=timeout or self.timeout, **kwargs)

        resp = send(False)
        if resp.status_code == 401 and self.uses_personal_token:
            resp = send(True)
        if resp.status_code not in allow:
            resp.raise_for_status()
        return resp

    def project_exists(self, project: str) -> bool:
        """Whether Label Studio still has the project (False: it answers 404, deleted or never seen)."""
        return self.request("GET", f"/api/projects/{project}", allow=(404,)).status_code != 404

    def activity(self, project: str, since: Optional[str] = None) -> Optional[Activity]:
        """Two small reads instead of the export (`Activity`): the project's annotation count,
        and one task of the annotated ones updated after `since`, newest first, with their number.
        None when Label Studio has no such project (deleted there)."""
        resp = self.request("GET", f"/api/projects/{project}", allow=(404,),
                            params={"include": "total_annotations_number,created_at"})
        if resp.status_code == 404:
            return None
        settings = resp.json()
        annotations = settings.get("total_annotations_number")
        items = [{"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0}]
        if since:
            items.append({"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
                          "value": since})
        query = json.dumps({"filters": {"conjunction": "and", "items": items}, "ordering": ["-tasks:updated_at"]})
        body = self.request("GET", "/api/tasks", params={"project": project, "page_size": 1, "fields": "task_only",
                                                         "query": query}).json()
        tasks = body.get("tasks") if isinstance(body, dict) else None
        total = body.get("total") if isinstance(body, dict) else None
        if not isinstance(annotations, int) or not isinstance(total, int) or not isinstance(tasks, list):
            raise ValueError(f"Label Studio's project {project} shows no annotation count or task total")
        return Activity(annotations, total, _filter_time(tasks[0].get("updated_at")) if tasks else None,
                        project_created(settings))

    def annotated_tasks(self, project: str) -> List[Dict]:
        """The tasks that have annotations, with them (Label Studio's JSON export of those only)."""
        params = {"exportType": "JSON", "download_all_tasks": "false"}
        return self.request("GET", f"/api/projects/{project}/export", timeout=EXPORT_TIMEOUT, params=params).json()

    def tasks(self, project: str, page_size: int = PAGE_SIZE) -> List[Dict]:
        """Every task, listed without its annotations or predictions (id, data,
        `total_annotations`), a page at a time by id (each page the tasks after the last id seen,
        so a task deleted meanwhile never shifts one past us, and a server that caps the page
        size is still listed whole), until Label Studio's own `total`. A listing that falls
        short raises `PushError`."""
        found: Dict[int, Dict] = {}
        total: Optional[int] = None
        while True:
            after = max(found, default=0)
            query = json.dumps({"filters": {"conjunction": "and", "items": [
                {"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": after}]},
                "ordering": ["tasks:id"]})
            body = self.request("GET", "/api/tasks", params={
                "project": project, "page": 1, "page_size": page_size, "fields": "task_only", "query": query}).json()
            tasks = body.get("tasks") if isinstance(body, dict) else body
            if not isinstance(tasks, list):
                raise PushError(f"Label Studio's task list has no tasks (after task {after})")
            if total is None and isinstance(body, dict):
                total = body.get("total")  # the first page's: every task of the project
            found.update((t["id"], t) for t in tasks)
            if not tasks or max(found, default=0) <= after:  # nothing newer: the end
                break
        if total is not None and len(found) < total:
            raise PushError(f"Label Studio listed {len(found)} of its {total} tasks")
        return list(found.values())

    def predictions(self, project: str) -> List[Dict]:
        """Every prediction of a project (id, task, model_version, ...), whoever made it."""
        body = self.request("GET", "/api/predictions", timeout=BULK_TIMEOUT, params={"project": project}).json()
        if not isinstance(body, list):
            raise PushError("Label Studio's prediction list is not a list")
        return body

    def project(self, project: str) -> Dict:
        """A project's settings (`model_version`, `show_collab_predictions`, `sampling`, ...)."""
        return self.request("GET", f"/api/projects/{project}").json()

    def labels(self, project: str, schema: Schema) -> List[Label]:
        """Every usable label of a project."""
        found: List[Label] = []
        for task in self.annotated_tasks(project):
            for annotation in task.get("annotations") or []:
                label = label_from({**annotation, "task": task.get("id")}, task, schema)
                if label is not None:
                    found.append(label)
        return found

    def import_predictions(self, project: str, predictions: List[Dict]) -> Tuple[int, List[int]]:
        """Store predictions (`{"task": id, "result", "score", "model_version"}`): (how many were
        stored, the tasks that vanished meanwhile). Label Studio refuses the whole request when
        one task no longer exists: the request is halved down to the tasks it refuses, and each
        of those is looked up: a task that is gone is skipped, any other refusal raises
        `PushError` with Label Studio's reason, as does an import that stored fewer than sent."""
        if not predictions:
            return 0, []
        resp = self.request("POST", f"/api/projects/{project}/import/predictions", allow=(400,), json=predictions)
        if resp.status_code == 400:
            if "task" not in resp.text:
                raise PushError(f"Label Studio refused the predictions: {resp.text[:300]}")
            if len(predictions) == 1:
                task = predictions[0].get("task")
                if self.request("GET", f"/api/tasks/{task}", allow=(404,)).status_code == 404:
                    log.info("project %s: task %s vanished; its prediction is skipped", project, task)
                    return 0, [task]
                raise PushError(f"Label Studio refused the prediction of task {task}: {resp.text[:300]}")
            half = len(predictions) // 2
            first, second = (self.import_predictions(project, part) for part in (predictions[:half], predictions[half:]))
            return first[0] + second[0], first[1] + second[1]
        created = resp.json().get("created", len(predictions)) if resp.content else len(predictions)
        if created < len(predictions):
            raise PushError(f"Label Studio stored {created} of {len(predictions)} predictions (does the result "
                            "match the label config?)")
        return created, []

    def update_prediction(self, prediction_id: int, fields: Dict) -> bool:
        """Rewrite one prediction in place, keeping its id (an annotation an annotator started
        from it still saves); False when it is gone (its task was deleted)."""
        resp = self.request("PATCH", f"/api/predictions/{prediction_id}", allow=(400, 404), json=fields)
        if resp.status_code == 400:
            raise PushError(f"Label Studio refused to update prediction {prediction_id}: {resp.text[:300]}")
        return resp.status_code != 404

    def ml_backends(self, project: str) -> List[Dict]:
        """The models connected to a project (Label Studio calls their /health and /setup)."""
        return self.request("GET", "/api/ml", params={"project": project}).json()

    def webhooks(self, project: str) -> List[Dict]:
        return self.request("GET", "/api/webhooks", params={"project": project}).json()

    def update_webhook(self, webhook_id: int, **fields: object) -> Dict:
        return self.request("PATCH", f"/api/webhooks/{webhook_id}", json=fields).json()

    def update_project(self, project: str, **fields: object) -> Dict:
        """PATCH project settings, e.g. `model_version` (sort and sample by that version's
        prediction scores) or `sampling` (`UNCERTAINTY_SAMPLING`: the lowest score first)."""
        return self.request("PATCH", f"/api/projects/{project}", json=fields).json()


def _filter_time(value: object) -> str:
    """Label Studio's `updated_at` ("...T12:00:00.123456Z", or without the fraction when it is
    0) in the one form its Data Manager's date filters parse: UTC with microseconds."""
    if not isinstance(value, str):
        raise ValueError(f"Label Studio's task has no updated_at time, got {value!r:.40}")
    when = datetime.fromisoformat(value)
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
