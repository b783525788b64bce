"""The whole loop through a real Label Studio's REST API, as the README's "Connect" section clicks it."""
import json
import random
import signal
import time

import requests

from baal_backend.data import load_clinc
from baal_backend.studio import LabelStudioClient
from tests.helpers import label_config

INTENTS = ["book_flight", "weather", "transfer", "restaurant_reservation"]
CONFIG = label_config(INTENTS)


def _dataset(per_intent: int = 15):
    data = load_clinc()
    rng = random.Random(0)
    rows = []
    for intent in INTENTS:
        texts = [t for t, y in zip(data.texts, data.labels) if y == intent]
        rows += [(t, intent) for t in rng.sample(texts, per_intent)]
    rng.shuffle(rows)
    return rows


def _wait(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(what)


def _predictions(ls, project):
    return ls.api("GET", "/api/predictions", params={"project": project})


def _ordered_tasks(ls, project, descending=False):
    query = json.dumps({"ordering": [("-" if descending else "") + "tasks:predictions_score"]})
    body = ls.api("GET", "/api/tasks", params={"project": project, "fields": "all", "query": query, "page_size": 500})
    return body["tasks"] if isinstance(body, dict) else body


def _annotate(ls, task_id, intent):
    return ls.api("POST", f"/api/tasks/{task_id}/annotations", json={
        "result": [{"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": [intent]}}]})


def test_active_learning_loop_with_real_label_studio(label_studio, backend_factory, tmp_path):
    ls = label_studio
    backend = backend_factory()
    rows = _dataset()
    truth = {}

    project = ls.api("POST", "/api/projects", json={"title": "baal e2e", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows])
    tasks = _ordered_tasks(ls, project)
    assert len(tasks) == len(rows) >= 50
    for task in tasks:
        truth[task["id"]] = dict(rows)[task["data"]["text"]]

    # connect: Label Studio calls /health and /setup and creates the webhook
    ml = ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})
    # retrieve predictions for all tasks: ONE /predict; count what was stored, do not trust the reply
    ls.api("POST", "/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
           json={"selectedItems": {"all": True, "excluded": []}})
    stored = _predictions(ls, project)
    assert len(stored) == len(rows)
    assert all(p["model_version"] == "v0000" and p["score"] is not None for p in stored)

    # uncertainty sampling on v0000's scores: /next serves the lowest score
    ls.api("PATCH", f"/api/projects/{project}", json={"sampling": "Uncertainty sampling", "model_version": "v0000"})
    lowest = min(stored, key=lambda p: p["score"])
    assert ls.api("GET", f"/api/projects/{project}/next")["id"] == lowest["task"]

    # annotate 12 tasks, starting with the one /next served (Label Studio keeps serving a user the
    # task it locked for them until it is labeled); webhooks store the labels, the backend trains,
    # publishes and pushes fresh scores
    labeled = [lowest["task"]] + [t["id"] for t in tasks if t["id"] != lowest["task"]][:11]
    annotations = {tid: _annotate(ls, tid, truth[tid])["id"] for tid in labeled}

    def trained_on(n):
        body = requests.get(f"{backend.url}/versions", params={"project": project}, timeout=5).json()
        pushed = body["last_run"].get("pushed") is not None
        if not body["training"] and pushed and body["details"] and body["details"][-1]["n_labels"] == n:
            return body
        return None

    first = _wait(lambda: trained_on(12), 180, "a version trained on 12 labels")
    version = first["current"]
    assert ls.api("GET", f"/api/projects/{project}")["model_version"] == version
    fresh = [p for p in _predictions(ls, project) if p["model_version"] == version]
    assert len(fresh) == len(rows) - 12 and {p["task"] for p in fresh}.isdisjoint(labeled)

    # ordering by prediction score and uncertainty sampling now use the NEW version's scores
    new_scores = {p["task"]: p["score"] for p in fresh}
    ordered = [t["id"] for t in _ordered_tasks(ls, project) if t["id"] in new_scores]
    assert [new_scores[i] for i in ordered] == sorted(new_scores.values())
    assert ls.api("GET", f"/api/projects/{project}/next")["id"] == min(new_scores, key=new_scores.get)

    # deleting an annotation removes that label; "Start training" trains on what is left
    gone = labeled[0]
    ls.api("DELETE", f"/api/annotations/{annotations[gone]}")
    ls.api("POST", f"/api/ml/{ml['id']}/train")
    second = _wait(lambda: trained_on(11), 180, "a version trained on 11 labels after the delete")
    assert second["current"] != version
    meta = json.loads((tmp_path / "models" / "projects" / str(project) / "versions" / second["current"] / "meta.json").read_text())
    assert annotations[gone] not in meta["annotation_ids"] and len(meta["annotation_ids"]) == 11

    # a backend restart mid-project: predictions keep working without /setup
    backend.stop(signal.SIGKILL)
    backend = backend_factory(port=backend.port)
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": "fly me to rome on friday"}])
    new_id = max(t["id"] for t in _ordered_tasks(ls, project))
    ls.api("POST", "/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
           json={"selectedItems": {"all": True, "excluded": []}})
    served = [p for p in _predictions(ls, project) if p["task"] == new_id]
    assert [p["model_version"] for p in served] == [second["current"]] and served[0]["score"] is not None


def test_both_token_kinds_reach_label_studio(label_studio):
    legacy = LabelStudioClient(label_studio.url, label_studio.token)
    assert isinstance(legacy.request("GET", "/api/projects").json(), (dict, list))
    pat = label_studio.api("POST", "/api/token/")["token"]
    personal = LabelStudioClient(label_studio.url, pat)
    assert personal.uses_personal_token
    assert isinstance(personal.request("GET", "/api/projects").json(), (dict, list))


def test_late_backend_learns_everything_from_label_studio(label_studio, backend_factory):
    """A backend with an empty MODEL_DIR, connected after labeling: "Start training" syncs all labels."""
    ls = label_studio
    rows = _dataset(per_intent=4)
    project = ls.api("POST", "/api/projects", json={"title": "late backend", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows])
    truth = dict(rows)
    tasks = _ordered_tasks(ls, project)
    for task in tasks[:12]:
        _annotate(ls, task["id"], truth[task["data"]["text"]])
    backend = backend_factory()
    ml = ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "late"})
    ls.api("POST", f"/api/ml/{ml['id']}/train")

    def trained():
        body = requests.get(f"{backend.url}/versions", params={"project": project}, timeout=5).json()
        return body if body["details"] and not body["training"] else None

    body = _wait(trained, 180, "a version after Start training")
    assert body["details"][-1]["n_labels"] == 12
    assert ls.api("GET", f"/api/projects/{project}")["model_version"] == body["current"]
