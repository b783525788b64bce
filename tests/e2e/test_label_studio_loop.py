"""The whole loop through a real Label Studio's REST API, as the README's "Connect" section clicks it."""
import json
import random
import signal
import time

import requests

from baal_backend.data import load_clinc
from baal_backend.project import Trash
from baal_backend.studio_client import LabelStudioClient
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


def _wait_backend(backend, project, predicate, timeout, what):
    def check():
        body = requests.get(f"{backend.url}/versions", params={"project": project}, timeout=5).json()
        return body if not body["training"] and predicate(body) else None

    return _wait(check, timeout, what)


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

    # connect: Label Studio calls /health and /setup and creates the webhook; the backend, which
    # has credentials, pushes v0000's scores for every task and switches the project to
    # uncertainty sampling itself (greyed out in the Community UI)
    ml = ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})

    def configured():
        settings = ls.api("GET", f"/api/projects/{project}")
        stored = _predictions(ls, project)
        ok = settings["sampling"] == "Uncertainty sampling" and settings["model_version"].startswith("v0000@")
        return stored if ok and len(stored) == len(rows) else None

    stored = _wait(configured, 120, "the backend to push v0000 and set uncertainty sampling")
    # before any training nothing is pre-filled: a score to sort by, no guessed class
    assert all(p["model_version"].startswith("v0000@") and p["score"] is not None and p["result"] == [] for p in stored)
    lowest = min(stored, key=lambda p: p["score"])
    assert ls.api("GET", f"/api/projects/{project}/next")["id"] == lowest["task"]

    # annotate 12 tasks, starting with the one /next served (Label Studio keeps serving a user the
    # task it locked for them until it is labeled); webhooks store the labels, the backend trains,
    # publishes and pushes fresh scores
    labeled = [lowest["task"]] + [t["id"] for t in tasks if t["id"] != lowest["task"]][:11]
    annotations = {tid: _annotate(ls, tid, truth[tid])["id"] for tid in labeled}

    def trained_on(n):  # a version on n labels, pushed (older versions' predictions deleted too)
        return lambda body: body["details"] and body["details"][-1]["n_labels"] == n and \
            (body["push"] or {}).get("version") == body["current"] and body["push"]["status"] == "ok"

    first = _wait_backend(backend, project, trained_on(12), 180, "a version trained on 12 labels")
    version = first["studio_version"]
    assert ls.api("GET", f"/api/projects/{project}")["model_version"] == version
    fresh = [p for p in _predictions(ls, project) if p["model_version"] == version]
    assert len(fresh) == len(rows) - 12 and {p["task"] for p in fresh}.isdisjoint(labeled)
    assert all(p["result"][0]["value"]["choices"][0] in INTENTS for p in fresh)  # a trained version pre-fills

    # ordering by prediction score and uncertainty sampling now use the NEW version's scores
    new_scores = {p["task"]: p["score"] for p in fresh}
    ordered = [t["id"] for t in _ordered_tasks(ls, project) if t["id"] in new_scores]
    assert [new_scores[i] for i in ordered] == sorted(new_scores.values())
    assert ls.api("GET", f"/api/projects/{project}/next")["id"] == min(new_scores, key=new_scores.get)

    # deleting an annotation removes that label; "Start training" trains on what is left
    gone = labeled[0]
    ls.api("DELETE", f"/api/annotations/{annotations[gone]}")
    ls.api("POST", f"/api/ml/{ml['id']}/train")
    second = _wait_backend(backend, project, trained_on(11), 180, "a version trained on 11 labels after the delete")
    assert second["current"] != version
    meta = json.loads((tmp_path / "models" / "projects" / str(project) / "versions" / second["current"] / "meta.json").read_text())
    assert annotations[gone] not in meta["annotation_ids"] and len(meta["annotation_ids"]) == 11

    # deleting tasks in the Data Manager sends only TASKS_DELETED: their labels leave training too
    dropped = labeled[1:2]
    ls.api("POST", "/api/dm/actions", params={"id": "delete_tasks", "project": project},
           json={"selectedItems": {"all": False, "included": dropped}})
    third = _wait_backend(backend, project, trained_on(10), 180, "a version without the deleted task's label")
    meta = json.loads((tmp_path / "models" / "projects" / str(project) / "versions" / third["current"] / "meta.json").read_text())
    assert not {annotations[t] for t in dropped} & set(meta["annotation_ids"])

    # after v0000 and three trained versions, nothing of ours was deleted (an annotator's open task
    # keeps the prediction it was pre-filled from): each task holds at most two of ours, rewritten
    # in place, and each unlabeled one exactly one of the current version
    per_task, current = {}, {}
    for p in _predictions(ls, project):
        per_task[p["task"]] = per_task.get(p["task"], 0) + 1
        if p["model_version"] == third["studio_version"]:
            current[p["task"]] = current.get(p["task"], 0) + 1
    assert max(per_task.values()) <= 2, per_task
    assert set(current.values()) == {1} and len(current) == len(rows) - 11  # 10 labeled, 1 task deleted

    # a backend restart mid-project: predictions keep working without /setup
    backend.stop(signal.SIGKILL)
    backend = backend_factory(port=backend.port)
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": "fly me to rome on friday"}])
    new_id = max(t["id"] for t in _ordered_tasks(ls, project))
    ls.api("POST", "/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
           json={"selectedItems": {"all": True, "excluded": []}})
    served = [p for p in _predictions(ls, project) if p["task"] == new_id]
    assert [p["model_version"] for p in served] == [third["studio_version"]] and served[0]["score"] is not None


def test_without_credentials_the_manual_steps_work(label_studio, backend_factory):
    """The README's steps for a backend without LABEL_STUDIO_URL/KEY: Retrieve Predictions, then
    the one API call for uncertainty sampling and the model version."""
    ls = label_studio
    backend = backend_factory(credentials=False)
    rows = _dataset(per_intent=5)
    project = ls.api("POST", "/api/projects", json={"title": "manual", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows])
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})
    ls.api("POST", "/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
           json={"selectedItems": {"all": True, "excluded": []}})
    stored = _predictions(ls, project)
    assert len(stored) == len(rows) and all(p["model_version"].startswith("v0000@") and p["score"] is not None for p in stored)
    assert ls.api("GET", f"/api/projects/{project}")["sampling"] != "Uncertainty sampling"  # nobody set it
    ls.api("PATCH", f"/api/projects/{project}", json={"sampling": "Uncertainty sampling", "model_version": stored[0]["model_version"]})
    lowest = min(stored, key=lambda p: p["score"])
    assert ls.api("GET", f"/api/projects/{project}/next")["id"] == lowest["task"]


def test_train_on_submission_toggle_does_not_double_versions(label_studio, backend_factory):
    """Label Studio's "Start model training on annotation submission" sends START_TRAINING with every
    submission, beside the annotation webhook: one version per label set all the same."""
    ls = label_studio
    backend = backend_factory(MIN_LABELS="6")
    rows = _dataset(per_intent=3)
    truth = dict(rows)
    project = ls.api("POST", "/api/projects", json={"title": "toggle", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows])
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})
    ls.api("PATCH", f"/api/projects/{project}", json={"start_training_on_annotation_update": True})
    tasks = _ordered_tasks(ls, project)
    for task in tasks[:8]:
        _annotate(ls, task["id"], truth[task["data"]["text"]])
    body = _wait_backend(backend, project, lambda b: b["details"] and b["details"][-1]["n_labels"] == 8, 180,
                         "a version on all 8 labels")
    time.sleep(3)  # any late START_TRAINING has arrived and run
    body = requests.get(f"{backend.url}/versions", params={"project": project}, timeout=5).json()
    counts = [d["n_labels"] for d in body["details"]]
    assert len(counts) == len(set(counts)), f"two versions on one label set: {counts}"


def test_a_wrong_api_key_still_trains_on_stored_labels(label_studio, backend_factory):
    """A failing sync (401) is recorded, and the run trains on what the webhooks stored."""
    ls = label_studio
    backend = backend_factory(LABEL_STUDIO_API_KEY="0" * 40, MIN_LABELS="6")
    rows = _dataset(per_intent=3)
    truth = dict(rows)
    project = ls.api("POST", "/api/projects", json={"title": "bad key", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows])
    ml = ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})
    for task in _ordered_tasks(ls, project)[:7]:
        _annotate(ls, task["id"], truth[task["data"]["text"]])
    ls.api("POST", f"/api/ml/{ml['id']}/train")
    body = _wait_backend(backend, project, lambda b: b["details"] and b["details"][-1]["n_labels"] == 7
                         and "sync" in b["last_run"], 180, "a version on the 7 stored labels")
    assert body["last_run"]["sync"]["status"] == "failed" and "401" in body["last_run"]["sync"]["error"]
    # the push fails the same way, and /versions says so
    body = _wait_backend(backend, project, lambda b: b["push"], 60, "the failed push recorded")
    assert body["push"]["status"] == "failed" and "401" in body["push"]["error"]


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

    body = _wait_backend(backend, project, lambda b: b["details"] and (b["push"] or {}).get("version") == b["current"],
                         180, "a version after Start training, pushed")
    assert body["details"][-1]["n_labels"] == 12
    assert ls.api("GET", f"/api/projects/{project}")["model_version"] == body["studio_version"]



def test_basic_auth_through_label_studio(label_studio, backend_factory):
    """Label Studio's Connect Model dialog with "Basic Authentication": it sends the credentials to
    /health, /setup and /predict, but creates the model's webhook without them. The backend, with
    credentials of its own, adds the header to that webhook, so annotations still arrive."""
    ls = label_studio
    auth = {"BASIC_AUTH_USER": "ls-model", "BASIC_AUTH_PASS": "s3cret-pass"}
    backend = backend_factory(MIN_LABELS="6", **auth)
    basic = requests.auth.HTTPBasicAuth(auth["BASIC_AUTH_USER"], auth["BASIC_AUTH_PASS"])
    assert requests.get(f"{backend.url}/versions", params={"project": 1}, timeout=5).status_code == 401
    rows = _dataset(per_intent=3)
    truth = dict(rows)
    project = ls.api("POST", "/api/projects", json={"title": "basic auth", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows])
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal", "auth_method": "BASIC_AUTH",
                                    "basic_auth_user": auth["BASIC_AUTH_USER"], "basic_auth_pass": auth["BASIC_AUTH_PASS"]})
    _wait(lambda: any((h.get("headers") or {}).get("Authorization", "").startswith("Bearer ")
                      for h in ls.api("GET", "/api/webhooks", params={"project": project})), 60,
          "the backend to put its webhook token on the webhook")
    for task in _ordered_tasks(ls, project)[:7]:
        _annotate(ls, task["id"], truth[task["data"]["text"]])

    def stored():
        body = requests.get(f"{backend.url}/versions", params={"project": project}, auth=basic, timeout=5).json()
        return body if body["labels"] == 7 and body["details"] and not body["training"] and \
            (body["push"] or {}).get("version") == body["current"] else None

    body = _wait(stored, 180, "7 labels through the authenticated webhook, and a version, pushed")
    # Retrieve Predictions goes through the same credentials
    ls.api("POST", "/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
           json={"selectedItems": {"all": True, "excluded": []}})
    assert {p["model_version"].split("@")[0] for p in _predictions(ls, project)} <= {"v0000", *body["versions"]}


def test_push_skips_a_task_deleted_meanwhile(label_studio):
    """Label Studio refuses a whole import when one task is gone: the client halves until only
    the vanished task is left out."""
    ls = label_studio
    project = ls.api("POST", "/api/projects", json={"title": "vanished", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": f"text {i}"} for i in range(9)])
    ids = sorted(t["id"] for t in _ordered_tasks(ls, project))
    ls.api("DELETE", f"/api/tasks/{ids[4]}")
    client = LabelStudioClient(ls.url, ls.token)
    preds = [{"task": tid, "result": [], "score": 0.5, "model_version": "v0001-20260101-000000"} for tid in ids]
    assert client.import_predictions(str(project), preds) == (8, [ids[4]])
    assert sorted(p["task"] for p in _predictions(ls, project)) == ids[:4] + ids[5:]


def test_pushes_are_held_back_and_then_sent(label_studio, backend_factory):
    """PUSH_EVERY_SECONDS: a version published soon after a push waits, then goes out by itself."""
    ls = label_studio
    # 20 s: room for the second version's run (prior refinement, out-of-fold heads) on a busy CI machine
    backend = backend_factory(MIN_LABELS="6", PUSH_EVERY_SECONDS="20", PUSH_EVERY_LABELS="100")
    rows = _dataset(per_intent=4)
    truth = dict(rows)
    project = ls.api("POST", "/api/projects", json={"title": "held back", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows])
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})
    tasks = _ordered_tasks(ls, project)
    for task in tasks[:6]:
        _annotate(ls, task["id"], truth[task["data"]["text"]])
    first = _wait_backend(backend, project, lambda b: b["details"] and b["details"][-1]["n_labels"] == 6, 120, "v1")
    _wait(lambda: ls.api("GET", f"/api/projects/{project}")["model_version"] == first["studio_version"], 30, "first pushed")
    for task in tasks[6:8]:
        _annotate(ls, task["id"], truth[task["data"]["text"]])
    second = _wait_backend(backend, project, lambda b: b["details"][-1]["n_labels"] == 8, 120, "v2")
    assert second["last_run"]["push"]["status"] == "deferred"
    assert ls.api("GET", f"/api/projects/{project}")["model_version"] == first["studio_version"]  # held back
    _wait(lambda: ls.api("GET", f"/api/projects/{project}")["model_version"] == second["studio_version"], 60,
          "the held-back push")


def test_a_long_push_never_holds_the_next_version_back(label_studio, backend_factory):
    """A push runs on its own thread: while 1,500 tasks' predictions are rewritten in Label Studio
    (one request each), the next labels still train and publish; the push asked for meanwhile
    then sends the newest version."""
    ls = label_studio
    backend = backend_factory(MIN_LABELS="6", PUSH_EVERY_SECONDS="0")
    rows = _dataset(per_intent=20)
    truth = dict(rows)
    project = ls.api("POST", "/api/projects", json={"title": "long push", "label_config": CONFIG})["id"]
    filler = [{"text": f"{rows[i % len(rows)][0]} #{i}"} for i in range(1500 - len(rows))]
    ls.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows] + filler)
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})
    _wait_backend(backend, project, lambda b: (b["push"] or {}).get("version") == "v0000", 300, "v0000 pushed")
    listed = ls.api("GET", "/api/tasks", params={"project": project, "page_size": 2000, "fields": "task_only"})["tasks"]
    tasks = [t for t in listed if t["data"]["text"] in truth]
    assert len(tasks) == len(rows)
    for task in tasks[:6]:
        _annotate(ls, task["id"], truth[task["data"]["text"]])
    pushed = lambda n: lambda b: b["details"] and b["details"][-1]["n_labels"] == n and \
        (b["push"] or {}).get("version") == b["current"]  # noqa: E731
    _wait_backend(backend, project, pushed(6), 300, "v1 pushed (new predictions: a bulk import)")
    for task in tasks[6:8]:
        _annotate(ls, task["id"], truth[task["data"]["text"]])
    second = _wait_backend(backend, project, lambda b: b["details"][-1]["n_labels"] == 8, 120, "v2")
    for task in tasks[8:10]:  # while v2's push rewrites v0000's ~1,500 predictions in place, one by one
        _annotate(ls, task["id"], truth[task["data"]["text"]])
    third = _wait_backend(backend, project, lambda b: b["details"][-1]["n_labels"] == 10, 120, "v3")
    # v3 was published while v2's push was still going
    assert (third["push"] or {}).get("version") != second["current"], third["push"]
    assert third["last_run"]["push"]["status"] == "scheduled"
    done = _wait_backend(backend, project, lambda b: (b["push"] or {}).get("version") == third["current"], 600,
                         "v3 pushed after v2's push")
    assert done["push"]["status"] == "ok" and done["push"]["predictions"] == 1500 - 10
    assert ls.api("GET", f"/api/projects/{project}")["model_version"] == third["studio_version"]
    versions = ls.api("GET", f"/api/projects/{project}/model-versions")
    assert versions[third["studio_version"]] == 1500 - 10 and all(v.endswith("@" + third["studio_version"].split("@")[1])
                                                                  for v in versions)


def test_a_forged_project_deleted_is_refused_while_label_studio_has_the_project(label_studio, backend_factory,
                                                                                 tmp_path):
    """An unauthenticated backend takes any POST: PROJECT_DELETED trashes a project only once
    Label Studio answers 404 for it (its Community edition never sends one itself)."""
    ls = label_studio
    backend = backend_factory()
    project = ls.api("POST", "/api/projects", json={"title": "forged delete", "label_config": CONFIG})["id"]
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})  # /setup: state
    root = tmp_path / "models" / "projects" / str(project)
    assert root.is_dir()
    deleted = {"action": "PROJECT_DELETED", "project": {"id": project}}
    forged = requests.post(f"{backend.url}/webhook", json=deleted, timeout=30).json()
    assert forged["status"] == "refused" and f"Label Studio still has project {project}" in forged["reason"]
    assert root.is_dir() and not Trash(tmp_path / "models", 7).entries()
    ls.api("DELETE", f"/api/projects/{project}")
    assert requests.post(f"{backend.url}/webhook", json=deleted, timeout=30).json()["status"] == "ok"
    assert not root.exists() and [e.project for e in Trash(tmp_path / "models", 7).entries()] == [str(project)]
