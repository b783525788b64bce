"""The push against a Label Studio that misbehaves (`tests/fake_studio.py`): after every push
recorded "ok", each unlabeled task has exactly one current prediction of ours; after a failed
one, the previous version's predictions are all still there; other sources' predictions and
ids an annotator may hold are never lost."""
from __future__ import annotations

import pytest

from baal_backend.studio_client import LabelStudioClient
from baal_backend.studio_link import StudioLink
from baal_backend.studio_push import STATE
from tests.fake_studio import FakeStudio
from tests.helpers import SENTIMENT, sentiment_events

PROJECT = 1
FOREIGN = ("v0001", "v0002-20250101-120000", "zero-shot-llm")


@pytest.fixture
def studio():
    fake = FakeStudio(PROJECT, n_tasks=350)
    yield fake
    fake.stop()


def _backend(make_app, studio, model_dir, timeout=5.0):
    client = make_app(model_dir)
    assert client.post("/setup", json={"project": f"{PROJECT}.1", "schema": SENTIMENT}).status_code == 200
    link = StudioLink(client.engine, LabelStudioClient(studio.url, "token", timeout=timeout), client.engine.settings)
    return client, link


def _train(client, n):
    """n labels (sentiment webhooks for tasks outside the fake's list): a new version."""
    before = client.engine.current_version(str(PROJECT))
    for event in sentiment_events(PROJECT, n, start_id=5000):
        assert client.post("/webhook", json=event).status_code == 200
    assert client.engine.jobs.wait_idle(str(PROJECT), 300)
    assert client.engine.current_version(str(PROJECT)) != before


def _push(link):
    ok = link.pushes.push_quietly(str(PROJECT))
    return ok, link.engine.project(str(PROJECT)).read_json(STATE)["last_push"]


def _assert_covered(studio, name):
    """Every unlabeled task has exactly one prediction of `name`."""
    current = [p for p in studio.predictions.values() if p["model_version"] == name]
    unlabeled = {t for t, task in studio.tasks.items() if not task["total_annotations"]}
    assert sorted(p["task"] for p in current) == sorted(unlabeled)


def test_push_covers_every_task_when_pages_are_capped(make_app, studio, tmp_path):
    """A Label Studio that serves 100 tasks a page, whatever we ask, is listed whole."""
    studio.faults["page_cap"] = 100
    client, link = _backend(make_app, studio, tmp_path / "a")
    ok, outcome = _push(link)
    assert ok and outcome["predictions"] == 350, outcome
    _assert_covered(studio, outcome["studio_version"])
    assert studio.settings["model_version"] == outcome["studio_version"]  # the title placeholder: taken


def test_pushes_never_delete_and_keep_foreign_predictions(make_app, studio, tmp_path):
    foreign = {studio.add_prediction(task, version)["id"]: version for task in range(1, 11) for version in FOREIGN}
    studio.tasks[300]["total_annotations"] = 1  # a labeled task: not pushed
    client, link = _backend(make_app, studio, tmp_path / "a")
    names = []
    for labels in (0, 10, 14):
        if labels:
            _train(client, labels)
        ok, outcome = _push(link)
        assert ok, outcome
        names.append(outcome["studio_version"])
        _assert_covered(studio, names[-1])
        assert studio.settings["model_version"] == names[-1]
        # every row ever created still exists (an annotator's parent_prediction stays valid) ...
        assert set(range(1, max(studio.predictions) + 1)) == set(studio.predictions)
        # ... other sources' rows untouched, and at most two of ours per task
        assert {pid: studio.predictions[pid]["model_version"] for pid in foreign} == foreign
        ours = [p for p in studio.predictions.values() if p["model_version"] in names]
        per_task = {}
        for p in ours:
            per_task[p["task"]] = per_task.get(p["task"], 0) + 1
        assert max(per_task.values()) <= 2
    assert outcome["rewritten"] == 349 and outcome["new"] == 0  # the third push rewrote v0000's rows in place
    assert len(set(names)) == 3 and all(n.endswith("@" + client.engine.instance) for n in names)


@pytest.mark.parametrize("fault, why", [
    ({"fail_after": {"import": 1}}, "500"),
    ({"reject_import": True}, "refused"),
    ({"drop_import": True}, "stored 349 of 350"),
])
def test_a_failed_import_keeps_the_previous_version_whole(make_app, studio, tmp_path, fault, why):
    client, link = _backend(make_app, studio, tmp_path / "a")
    ok, first = _push(link)
    assert ok
    before = {pid: dict(p) for pid, p in studio.predictions.items()}
    _train(client, 10)
    studio.faults.update(fault)
    ok, outcome = _push(link)
    assert not ok and outcome["status"] == "failed" and why in outcome["error"], outcome
    assert {pid: studio.predictions[pid] for pid in before} == before  # v0000's rows, all there, unchanged
    assert studio.settings["model_version"] == first["studio_version"]
    health = client.get("/health").get_json()["problems"]
    assert any("push to Label Studio failed" in p and why in p for p in health)
    assert b"push to Label Studio failed" in client.get(f"/report/{PROJECT}").data
    assert client.get(f"/versions?project={PROJECT}").get_json()["details"]  # still serving
    studio.faults.clear()
    ok, outcome = _push(link)  # the retry completes it
    assert ok, outcome
    _assert_covered(studio, outcome["studio_version"])
    assert not any("push to Label Studio failed" in p for p in client.get("/health").get_json()["problems"])


def test_a_failed_or_slow_rewrite_keeps_the_live_version_whole(make_app, studio, tmp_path):
    client, link = _backend(make_app, studio, tmp_path / "a", timeout=1.0)
    assert _push(link)[0]
    _train(client, 10)
    ok, live = _push(link)
    assert ok
    _train(client, 14)
    for fault in ({"fail_after": {"patch": 5}}, {"slow_patch": 2.0}):
        studio.faults = dict(fault)
        before = {pid: dict(p) for pid, p in studio.predictions.items() if p["model_version"] == live["studio_version"]}
        ok, outcome = _push(link)
        assert not ok, outcome
        assert {pid: studio.predictions[pid] for pid in before} == before
        assert studio.settings["model_version"] == live["studio_version"]
    studio.faults = {}
    ok, outcome = _push(link)
    assert ok, outcome
    _assert_covered(studio, outcome["studio_version"])


def test_a_task_deleted_mid_push_is_skipped_not_a_failure(make_app, studio, tmp_path):
    client, link = _backend(make_app, studio, tmp_path / "a")
    studio.faults["vanish_on_import"] = 123
    ok, outcome = _push(link)
    assert ok and outcome["vanished"] == 1 and outcome["predictions"] == 349, outcome
    _assert_covered(studio, outcome["studio_version"])


def test_a_version_a_person_picked_stays(make_app, studio, tmp_path):
    client, link = _backend(make_app, studio, tmp_path / "a")
    assert _push(link)[0]
    studio.settings["model_version"] = "zero-shot-llm"  # picked in Settings -> Annotation
    _train(client, 10)
    ok, outcome = _push(link)
    assert ok and not outcome["made_current"] and "zero-shot-llm" in outcome["note"]
    assert studio.settings["model_version"] == "zero-shot-llm"
    _assert_covered(studio, outcome["studio_version"])  # pushed all the same: one click away
    studio.settings.update(model_version="", show_collab_predictions=False)  # prelabeling switched off
    _train(client, 14)
    ok, outcome = _push(link)
    assert ok and not outcome["made_current"] and "prelabeling is off" in outcome["note"]
    assert studio.settings == {**studio.settings, "model_version": "", "show_collab_predictions": False}


def test_two_backends_on_one_project_never_touch_each_other(make_app, studio, tmp_path):
    a, link_a = _backend(make_app, studio, tmp_path / "a")
    b, link_b = _backend(make_app, studio, tmp_path / "b")
    assert a.engine.instance != b.engine.instance
    assert _push(link_a)[0] and _push(link_b)[0]
    mine = {e.instance: {pid for pid, p in studio.predictions.items() if p["model_version"].endswith("@" + e.instance)}
            for e in (a.engine, b.engine)}
    assert all(len(rows) == 350 for rows in mine.values())
    assert studio.settings["model_version"].endswith("@" + a.engine.instance)  # b found a's version current: kept it
    _train(a, 10)
    _train(b, 10)
    for link in (link_a, link_b, link_a):
        assert _push(link)[0]
    for instance, rows in mine.items():  # each one's rows are still its own
        assert all(studio.predictions[pid]["model_version"].endswith("@" + instance) for pid in rows)
    assert studio.settings["model_version"] == link_a.engine.project(str(PROJECT)).read_json(STATE)["live"]


def test_a_project_with_nothing_left_to_score_is_not_a_failed_push(make_app, studio, tmp_path):
    """Every task labeled: nothing to store, and the project's version is left alone (Label Studio
    refuses a version with no predictions), instead of a push failing forever."""
    client, link = _backend(make_app, studio, tmp_path / "a")
    ok, first = _push(link)
    assert ok
    for task in studio.tasks.values():
        task["total_annotations"] = 1
    _train(client, 10)
    ok, outcome = _push(link)
    assert ok and outcome["predictions"] == 0 and not outcome["made_current"], outcome
    assert studio.settings["model_version"] == first["studio_version"]


def test_a_prediction_deleted_by_a_person_mid_push_is_stored_anew(make_app, studio, tmp_path):
    client, link = _backend(make_app, studio, tmp_path / "a")
    assert _push(link)[0]
    _train(client, 10)
    assert _push(link)[0]
    _train(client, 14)
    spare = min(pid for pid, p in studio.predictions.items() if p["model_version"].startswith("v0000@"))
    task = studio.predictions[spare]["task"]
    studio.faults["deleted_before_patch"] = spare  # "Delete predictions" in the Data Manager, mid-push
    ok, outcome = _push(link)
    assert ok and outcome["vanished"] == 0 and outcome["new"] == 1, outcome
    _assert_covered(studio, outcome["studio_version"])
    assert task in studio.of_version(outcome["studio_version"])


def test_an_older_version_of_ours_a_person_picked_stays_whole(make_app, studio, tmp_path):
    client, link = _backend(make_app, studio, tmp_path / "a")
    ok, v0 = _push(link)
    _train(client, 10)
    assert _push(link)[0]
    studio.settings["model_version"] = v0["studio_version"]  # picked back in Settings -> Annotation
    picked = {pid: dict(p) for pid, p in studio.predictions.items() if p["model_version"] == v0["studio_version"]}
    _train(client, 14)
    ok, outcome = _push(link)
    assert ok and not outcome["made_current"], outcome
    assert studio.settings["model_version"] == v0["studio_version"]
    assert {pid: studio.predictions[pid] for pid in picked} == picked
    _assert_covered(studio, outcome["studio_version"])


def test_a_task_deleted_while_tasks_are_listed_skips_none(make_app, studio, tmp_path):
    """Listing by id: deleting a task already listed never shifts an unlisted one out of sight."""
    studio.faults.update(page_cap=100, delete_while_listing=50)
    client, link = _backend(make_app, studio, tmp_path / "a")
    ok, outcome = _push(link)
    assert ok, outcome
    _assert_covered(studio, outcome["studio_version"])  # all 349 that are left, none skipped
