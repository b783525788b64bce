"""Label Studio's REST API: a small client for the label sync and the prediction push."""
from __future__ import annotations

import threading
import time
from typing import Dict, List, Optional

import requests

from .labels import Label
from .schema import Schema
from .studio import label_from

UNCERTAINTY_SAMPLING = "Uncertainty sampling"


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

    def update_project(self, project: str, **fields: object) -> Dict:
        """PATCH project settings, e.g. `model_version` (sort and sample by that version's
        prediction scores) or `sampling` (`UNCERTAINTY_SAMPLING`: the lowest score first)."""
        return self.request("PATCH", f"/api/projects/{project}", json=fields).json()
