"""Label Studio's REST API: a small client for the label sync and the prediction push."""
from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple

import requests

from .labels import Label
from .schema import Schema
from .studio import label_from

log = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
PAGE_SIZE = 500  # tasks per page of the push: one listing, one delete, one import per page
EXPORT_TIMEOUT = 300.0  # the label sync's export of every annotated task
BULK_TIMEOUT = 300.0  # deleting a version's predictions: 10,000 take Label Studio (SQLite) about 30 s


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

    def annotated_tasks(self, project: str) -> List[Dict]:
        """The tasks that have annotations, with them (Label Studio's JSON export of those only)."""
        params = {"exportType": "JSON", "download_all_tasks": "false"}
        return self.request("GET", f"/api/projects/{project}/export", timeout=EXPORT_TIMEOUT, params=params).json()

    def task_pages(self, project: str, page_size: int = PAGE_SIZE) -> Iterator[List[Dict]]:
        """Every task, a page at a time, without annotations or predictions: id, data,
        `total_annotations` (the Data Manager's task list)."""
        query = json.dumps({"ordering": ["tasks:id"]})
        for page in itertools.count(1):
            resp = self.request("GET", "/api/tasks", allow=(404,), params={
                "project": project, "page": page, "page_size": page_size, "fields": "task_only", "query": query})
            if resp.status_code == 404:  # "Invalid page": past the last one
                return
            body = resp.json()
            tasks = body["tasks"] if isinstance(body, dict) else body
            if tasks:
                yield tasks
            if len(tasks) < page_size:
                return

    def model_versions(self, project: str) -> Dict[str, int]:
        """{model version: predictions} of a project."""
        return self.request("GET", f"/api/projects/{project}/model-versions").json()

    def delete_model_version(self, project: str, version: str) -> None:
        """Delete every prediction of one model version (one request, however many)."""
        self.request("DELETE", f"/api/projects/{project}/model-versions", timeout=BULK_TIMEOUT,
                     json={"model_version": version})

    def labels(self, project: str, schema: Schema) -> List[Label]:
        """Every usable label of a project."""
        found: List[Label] = []
        for task in self.annotated_tasks(project):
            for annotation in task.get("annotations") or []:
                label = label_from({**annotation, "task": task.get("id")}, task, schema)
                if label is not None:
                    found.append(label)
        return found

    def import_predictions(self, project: str, predictions: List[Dict]) -> int:
        """Store predictions (`{"task": id, "result", "score", "model_version"}`) in one request;
        returns how many were stored. Label Studio refuses the whole request when one task no
        longer exists (deleted meanwhile): then halves, until the vanished tasks are left out."""
        if not predictions:
            return 0
        resp = self.request("POST", f"/api/projects/{project}/import/predictions", allow=(400,), json=predictions)
        if resp.status_code != 400:
            return len(predictions)
        if len(predictions) == 1:
            log.info("project %s: task %s vanished; its prediction is skipped", project, predictions[0].get("task"))
            return 0
        half = len(predictions) // 2
        return self.import_predictions(project, predictions[:half]) + self.import_predictions(project, predictions[half:])

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
