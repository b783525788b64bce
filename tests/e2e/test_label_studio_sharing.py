"""What the push must never destroy, against a real Label Studio: the prediction an annotator's
open task was pre-filled from (clicked in its labeling UI), other sources' predictions, and a
second backend's predictions on the same project."""
import time
from collections import Counter

from tests.e2e.test_label_studio_loop import CONFIG, _annotate, _dataset, _ordered_tasks, _predictions, _wait, \
    _wait_backend
from tests.e2e.test_label_studio_ui import OUT, _settle, login

FOREIGN = ("v0001", "v0002-20250101-120000", "zero-shot-llm")


def _pushed(n_labels):
    return lambda b: b["details"] and b["details"][-1]["n_labels"] == n_labels and \
        (b["push"] or {}).get("version") == b["current"] and b["push"]["status"] == "ok"


def _counters_match(ls, project):
    """The Data Manager's counters (per task and its footer) agree with the predictions stored."""
    real = Counter(p["task"] for p in _predictions(ls, project))
    body = ls.api("GET", "/api/tasks", params={"project": project, "page_size": 1000, "fields": "all"})
    shown = {t["id"]: t["total_predictions"] for t in body["tasks"]}
    assert shown == {t: real.get(t, 0) for t in shown}, "per-task prediction counters"
    assert body["total_predictions"] == sum(real.values()), "the Data Manager's footer"


def test_an_open_task_still_saves_after_two_pushes(label_studio, backend_factory, browser):
    ls = label_studio
    backend = backend_factory(MIN_LABELS="6")
    rows = _dataset(per_intent=6)
    truth = dict(rows)
    pid = ls.api("POST", "/api/projects", json={"title": "open task", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{pid}/import", json=[{"text": t} for t, _ in rows])
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": pid, "title": "baal-al"})
    tasks = _ordered_tasks(ls, pid)
    for task in tasks[:6]:
        _annotate(ls, task["id"], truth[task["data"]["text"]])
    first = _wait_backend(backend, pid, _pushed(6), 240, "v1 pushed")
    target = tasks[-1]
    prefill = [p for p in _predictions(ls, pid) if p["task"] == target["id"] and p["model_version"] == first["studio_version"]]
    assert len(prefill) == 1 and prefill[0]["result"]

    # an annotator opens the task in the labeling view: pre-filled from v1's prediction
    context, page = login(browser, ls)
    page.goto(f"{ls.url}/projects/{pid}/data?task={target['id']}")
    _settle(page, 5)
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "05-open-task-prefilled.png"))

    # meanwhile the team labels on: two more versions are pushed (the second rewrites v1's rows)
    for n, task in ((8, tasks[6:8]), (10, tasks[8:10])):
        for t in task:
            _annotate(ls, t["id"], truth[t["data"]["text"]])
        last = _wait_backend(backend, pid, _pushed(n), 240, f"the version on {n} labels pushed")
    assert ls.api("GET", f"/api/projects/{pid}")["model_version"] == last["studio_version"]

    # Submit in the page opened before both pushes: saved, and it names the prediction it started from
    if prefill[0]["result"][0]["value"]["choices"] != [truth[target["data"]["text"]]]:  # a pre-ticked one would untick
        page.locator(".lsf-choice", has_text=truth[target["data"]["text"]]).locator(".lsf-choice__checkbox").first.click()
    page.get_by_role("button", name="Submit").click()
    saved = _wait(lambda: ls.api("GET", f"/api/tasks/{target['id']}/annotations"), 30, "the annotation is saved")
    page.screenshot(path=str(OUT / "06-open-task-saved.png"))
    context.close()
    assert saved[0]["result"][0]["value"]["choices"] == [truth[target["data"]["text"]]]
    assert saved[0].get("parent_prediction") == prefill[0]["id"]
    _counters_match(ls, pid)


def test_foreign_predictions_and_a_second_backend_survive(label_studio, backend_factory, tmp_path):
    ls = label_studio
    rows = _dataset(per_intent=5)
    truth = dict(rows)
    pid = ls.api("POST", "/api/projects", json={"title": "shared project", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{pid}/import", json=[{"text": t} for t, _ in rows])
    tasks = _ordered_tasks(ls, pid)
    # another source stored predictions before any backend: versions named like ours and unlike
    foreign = [{"task": t["id"], "result": [], "score": 0.5, "model_version": v} for t in tasks[:10] for v in FOREIGN]
    ls.api("POST", f"/api/projects/{pid}/import/predictions", json=foreign)
    foreign_ids = {p["id"] for p in _predictions(ls, pid)}
    assert len(foreign_ids) == 30

    a = backend_factory(MIN_LABELS="6")
    ls.api("POST", "/api/ml", json={"url": a.url, "project": pid, "title": "staging"})
    for n, part in ((6, tasks[10:16]), (8, tasks[16:18])):
        for t in part:
            _annotate(ls, t["id"], truth[t["data"]["text"]])
        a_body = _wait_backend(a, pid, _pushed(n), 240, f"backend A's version on {n} labels pushed")
    a_ids = {p["id"] for p in _predictions(ls, pid) if p["model_version"].endswith("@" + a_body["studio_version"].split("@")[1])}

    b = backend_factory(MIN_LABELS="6", MODEL_DIR=str(tmp_path / "models-b"))
    ls.api("POST", "/api/ml", json={"url": b.url, "project": pid, "title": "production"})
    ls.api("POST", f"/api/ml/{ls.api('GET', '/api/ml', params={'project': pid})[-1]['id']}/train")
    b_body = _wait_backend(b, pid, _pushed(8), 240, "backend B trained on the synced labels, pushed")
    assert a_body["studio_version"].split("@")[1] != b_body["studio_version"].split("@")[1]
    for t in tasks[18:20]:
        _annotate(ls, t["id"], truth[t["data"]["text"]])
    _wait_backend(a, pid, _pushed(10), 240, "A's next version pushed")
    _wait_backend(b, pid, _pushed(10), 240, "B's next version pushed")
    time.sleep(2)

    stored = {p["id"]: p for p in _predictions(ls, pid)}
    assert foreign_ids <= set(stored), "another source's predictions were deleted"
    assert a_ids <= set(stored), "backend A's predictions were deleted"
    a_tag, b_tag = (body["studio_version"].split("@")[1] for body in (a_body, b_body))
    assert all(stored[i]["model_version"].endswith("@" + a_tag) for i in a_ids)
    assert any(p["model_version"].endswith("@" + b_tag) for p in stored.values())
    _counters_match(ls, pid)
