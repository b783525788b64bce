"""A small stand-in for Label Studio's REST API, for faults a real one will not make on demand.

It keeps tasks and predictions the way Label Studio 1.23.2 does (read in its source): an import
creates new rows and is refused whole (400, naming the task) when one task is gone, a PATCH
keeps a prediction's id, the task list pages with `total`. On top, `faults` make it misbehave:
cap the page size, refuse or silently drop imports, fail with 500s, or answer too late.
"""
from __future__ import annotations

import itertools
import json
import re
import threading
import time
from typing import Any, Dict, List, Optional

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class FakeStudio:
    def __init__(self, project: int = 1, n_tasks: int = 0, texts: Optional[List[str]] = None):
        self.project = project
        self.tasks: Dict[int, Dict] = {}
        self.predictions: Dict[int, Dict] = {}
        self.settings: Dict[str, Any] = {"id": project, "model_version": "baal", "show_collab_predictions": True,
                                         "sampling": "Sequential sampling", "created_at": "2023-11-14T22:13:20Z"}  # 1700000000
        self.ml_titles = ["baal"]
        self.faults: Dict[str, Any] = {}  # page_cap, reject_import, drop_import, fail_after, slow_patch, vanish_on_import, deleted_before_patch
        self.calls: Dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        for i, text in enumerate(texts or [f"text {k}" for k in range(n_tasks)]):
            self.tasks[1 + i] = {"id": 1 + i, "data": {"text": text}, "total_annotations": 0}
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()

    # --- what tests read -----------------------------------------------------------------
    def of_version(self, version: str) -> Dict[int, Dict]:
        """{task: prediction} of one model version."""
        return {p["task"]: p for p in self.predictions.values() if p["model_version"] == version}

    def add_prediction(self, task: int, version: str, score: float = 0.5) -> Dict:
        row = {"id": next(self._ids), "task": task, "project": self.project, "model_version": version, "score": score,
               "result": []}
        self.predictions[row["id"]] = row
        return row

    # --- the API ---------------------------------------------------------------------------
    def _count(self, what: str) -> int:
        self.calls[what] = self.calls.get(what, 0) + 1
        return self.calls[what]

    def _fail(self, what: str) -> Optional[Response]:
        """The `fail_after` fault: {"import": 1} answers 500 from the 2nd import on."""
        n = self._count(what)
        limit = self.faults.get("fail_after", {}).get(what)
        if limit is not None and n > limit:
            return Response("server error", status=500)
        return None

    def _app(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        path, method = request.path.rstrip("/"), request.method
        body = request.get_json(silent=True)
        if path == "/api/tasks" and method == "GET":
            return self._list_tasks(request)
        match = re.fullmatch(r"/api/tasks/(\d+)", path)
        if match:
            task = self.tasks.get(int(match.group(1)))
            return _json(task) if task else _json({"detail": "Not found."}, 404)
        if path == "/api/predictions" and method == "GET":
            return _json(list(self.predictions.values()))
        match = re.fullmatch(r"/api/predictions/(\d+)", path)
        if match and method == "PATCH":
            return self._patch(int(match.group(1)), body)
        if path == f"/api/projects/{self.project}/import/predictions" and method == "POST":
            return self._import(body)
        if path == f"/api/projects/{self.project}":
            if method == "PATCH":
                known = {p["model_version"] for p in self.predictions.values()} | set(self.ml_titles) | {""}
                if body.get("model_version", "") not in known:  # as Label Studio's ProjectSerializer
                    return _json({"validation_errors": {"model_version": ["Model version doesn't exist"]}}, 400)
                self.settings.update(body)
            return _json(self.settings)
        if path == "/api/ml":
            return _json([{"id": 1, "title": t, "url": "http://backend"} for t in self.ml_titles])
        return _json({"detail": f"no route {method} {path}"}, 404)

    def _list_tasks(self, request: Request) -> Response:
        size = min(int(request.args.get("page_size", 100)), self.faults.get("page_cap", 10**9))
        page = int(request.args.get("page", 1))
        rows = [self.tasks[k] for k in sorted(self.tasks)]
        for item in json.loads(request.args.get("query", "{}")).get("filters", {}).get("items", []):
            assert (item["filter"], item["operator"]) == ("filter:tasks:id", "greater"), item  # the one filter used
            rows = [t for t in rows if t["id"] > item["value"]]
        if self.faults.get("delete_while_listing") and page == 1 and rows and rows[0]["id"] > 1:
            self.tasks.pop(self.faults.pop("delete_while_listing"))  # a task listed earlier is deleted
        chunk = rows[(page - 1) * size: page * size]
        if page > 1 and not chunk:
            return _json({"detail": "Invalid page."}, 404)
        return _json({"tasks": chunk, "total": len(rows), "total_annotations": 0, "total_predictions": 0})

    def _import(self, items: List[Dict]) -> Response:
        failed = self._fail("import")
        if failed:
            return failed
        if self.faults.get("reject_import"):
            return _json({"detail": "Validation error", "validation_errors": {"result": ["bad from_name"]}}, 400)
        vanish = self.faults.pop("vanish_on_import", None)
        if vanish is not None:
            self.tasks.pop(vanish, None)
            self.predictions = {k: p for k, p in self.predictions.items() if p["task"] != vanish}
        for item in items:
            if item["task"] not in self.tasks:
                return _json({"detail": "Validation error", "validation_errors": {"non_field_errors": [
                    f'{item} contains invalid "task" field: corresponding task ID couldn\'t be retrieved']}}, 400)
        keep = items[: len(items) - 1] if self.faults.get("drop_import") else items
        for item in keep:
            row = self.add_prediction(item["task"], item["model_version"], item["score"])
            row["result"] = item["result"]
        return _json({"created": len(keep)}, 201)

    def _patch(self, pid: int, body: Dict) -> Response:
        failed = self._fail("patch")
        if failed:
            return failed
        if self.faults.get("slow_patch"):
            self._lock.release()  # others go on meanwhile, as on a real server
            try:
                time.sleep(self.faults["slow_patch"])
            finally:
                self._lock.acquire()
        if pid == self.faults.get("deleted_before_patch"):  # a person deleted it after the push listed it
            self.predictions.pop(pid, None)
        row = self.predictions.get(pid)
        if row is None:
            return _json({"detail": "Not found."}, 404)
        row.update({k: body[k] for k in ("result", "score", "model_version") if k in body})
        return _json(row)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")
