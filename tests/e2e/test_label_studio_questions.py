"""A real Label Studio with two questions about one text: a multi-label `<Choices>` and a
single-choice one. Every task gets a prediction, the labeling view opens with both pre-filled
(checked in Chromium), and a retrain pushes fresh scores. Screenshots in
test-output/label-studio-ui/ (gitignored)."""
import itertools

from tests.e2e.test_label_studio_loop import _predictions, _wait_backend
from tests.e2e.test_label_studio_sharing import _counters_match, _pushed
from tests.e2e.test_label_studio_ui import OUT, _settle, login
from tests.integration.test_questions import CONFIG, SETS, _text


def _rows():
    """30 texts: every topic set, happy and unhappy, in varied wording."""
    combos = list(itertools.product(SETS, [True, False]))
    return [(_text(topics, k, happy), topics, "happy" if happy else "unhappy")
            for k, (topics, happy) in enumerate(combos + combos + combos[:6])]


def _answer(ls, task_id, topics, mood):
    return ls.api("POST", f"/api/tasks/{task_id}/annotations", json={"result": [
        {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": list(topics)}},
        {"from_name": "mood", "to_name": "text", "type": "choices", "value": {"choices": [mood]}}]})


def test_two_questions_prefill_in_label_studios_labeling_view(label_studio, backend_factory, browser):
    ls = label_studio
    backend = backend_factory(MIN_LABELS="8")
    rows = _rows()
    truth = {text: (topics, mood) for text, topics, mood in rows}
    pid = ls.api("POST", "/api/projects", json={"title": "two questions", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{pid}/import", json=[{"text": text} for text, _, _ in rows])
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": pid, "title": "baal-al"})
    tasks = sorted(ls.api("GET", "/api/tasks", params={"project": pid, "page_size": 100})["tasks"], key=lambda t: t["id"])
    for task in tasks[:12]:
        _answer(ls, task["id"], *truth[task["data"]["text"]])
    first = _wait_backend(backend, pid, _pushed(12), 300, "a version on 12 labels pushed")
    assert set(first["details"][-1]["metrics"]["questions"]) == {"topic", "mood"}

    # every unlabeled task has our prediction of this version, and each answers both questions
    mine = [p for p in _predictions(ls, pid) if p["model_version"] == first["studio_version"]]
    assert sorted(p["task"] for p in mine) == [t["id"] for t in tasks[12:]]
    assert all({r["from_name"] for r in p["result"]} == {"topic", "mood"} for p in mine)
    assert ls.api("GET", f"/api/projects/{pid}")["model_version"] == first["studio_version"]

    # an annotator opens an unlabeled task: both questions come pre-filled from that prediction
    target = tasks[-1]
    (prediction,) = [p for p in mine if p["task"] == target["id"]]
    expected = {r["from_name"]: r["value"]["choices"] for r in prediction["result"]}
    context, page = login(browser, ls)
    page.goto(f"{ls.url}/projects/{pid}/data?task={target['id']}")
    _settle(page, 5)
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "07-two-questions-prefilled.png"))
    checked = page.eval_on_selector_all(".lsf-choice", "els => els.filter(e => e.querySelector('input:checked'))"
                                        ".map(e => e.innerText.replace(/\\[\\d+\\]\\s*$/, '').trim())")  # no hotkey
    context.close()
    assert sorted(checked) == sorted(expected["topic"] + expected["mood"]), (checked, expected)

    # more labels: a retrain pushes fresh scores for every task under a new version
    for task in tasks[12:16]:
        _answer(ls, task["id"], *truth[task["data"]["text"]])
    second = _wait_backend(backend, pid, _pushed(16), 300, "a version on 16 labels pushed")
    assert second["studio_version"] != first["studio_version"]
    fresh = [p for p in _predictions(ls, pid) if p["model_version"] == second["studio_version"]]
    assert sorted(p["task"] for p in fresh) == [t["id"] for t in tasks[16:]]
    assert ls.api("GET", f"/api/projects/{pid}")["model_version"] == second["studio_version"]
    _counters_match(ls, pid)
