"""Labels whose webhook was lost (Label Studio never retries one) come back by themselves, with
credentials: the backend compares Label Studio with its label store cheaply at start-up and every
RECONCILE_SECONDS, and syncs only when something is missing."""
import time

import pytest

from baal_backend.engine import Engine
from baal_backend.settings import Settings
from baal_backend.studio import label_from
from baal_backend.studio_client import LabelStudioClient
from baal_backend.studio_link import StudioLink
from tests.e2e.test_label_studio_loop import CONFIG, _annotate, _dataset, _ordered_tasks, _wait_backend


class CountingClient(LabelStudioClient):
    """The real client, counting the full exports it makes (the expensive call)."""

    exports = 0

    def annotated_tasks(self, project):
        self.exports += 1
        return super().annotated_tasks(project)


def _choice(intent):
    return [{"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": [intent]}}]


@pytest.fixture
def studio_project(label_studio):
    """A Label Studio project of 40 tasks, and the truth of each task."""
    rows = _dataset(per_intent=10)
    project = label_studio.api("POST", "/api/projects", json={"title": "reconcile", "label_config": CONFIG})["id"]
    label_studio.api("POST", f"/api/projects/{project}/import", json=[{"text": t} for t, _ in rows])
    truth = dict(rows)
    return project, [(t["id"], truth[t["data"]["text"]]) for t in _ordered_tasks(label_studio, project)]


def test_the_cheap_check_syncs_only_when_a_webhook_was_lost(label_studio, studio_project, tmp_path):
    """In-process engine and link on the real Label Studio (no backend connected: no webhook
    arrives unless the test delivers it). MIN_LABELS is out of reach: a sync run syncs and stops."""
    ls = label_studio
    project, tasks = studio_project
    pid = str(project)
    annotations = [_annotate(ls, tid, intent) for tid, intent in tasks[:12]]
    settings = Settings(model_dir=tmp_path / "models", label_studio_url=ls.url, label_studio_api_key=ls.token,
                        min_labels=1000)
    engine = Engine(settings)
    client = CountingClient(ls.url, ls.token)
    link = StudioLink(engine, client, settings)
    engine.events.subscribe(link)
    schema = engine.schema(pid, CONFIG)
    store = engine.project(pid).store

    def check():
        asked = link.reconciler.reconcile(pid)
        assert engine.jobs.wait_idle(pid, 60)
        return asked

    try:
        # never synced: the first check syncs (12 labels the backend never heard of)
        assert check() and client.exports == 1 and store.count() == 12
        # nothing changed in Label Studio: no export
        assert not check() and client.exports == 1
        # a label whose webhook arrived: stored, so no export either
        tid, intent = tasks[12]
        done = _annotate(ls, tid, intent)
        written, _ = engine.store_labels(pid, [label_from(done, ls.api("GET", f"/api/tasks/{tid}"), schema)])
        assert written == 1 and not check() and client.exports == 1
        # an edit whose webhook was lost (same count of annotations): found, synced once
        other = next(i for i in ("weather", "transfer") if i != tasks[0][1])
        ls.api("PATCH", f"/api/annotations/{annotations[0]['id']}", json={"result": _choice(other)})
        assert check() and client.exports == 2 and store.get(annotations[0]["id"]).label == other
        assert not check() and client.exports == 2
        # a deletion whose webhook was lost
        ls.api("DELETE", f"/api/annotations/{annotations[1]['id']}")
        assert check() and client.exports == 3 and store.get(annotations[1]["id"]) is None and store.count() == 12
        # a change that brings no label (a skip beside an annotation): one sync, then never again
        ls.api("POST", f"/api/tasks/{tasks[2][0]}/annotations", json={"result": [], "was_cancelled": True})
        assert check() and client.exports == 4
        assert not check() and not check() and client.exports == 4 and store.count() == 12
    finally:
        engine.shutdown(5)


def test_a_backend_stopped_during_20_annotations_catches_up_after_restart(label_studio, backend_factory,
                                                                         studio_project):
    """Label Studio drops the 20 webhooks it cannot deliver; the restarted backend finds them
    missing at start-up, syncs, and trains a version on all of them within 60 s of restarting."""
    ls = label_studio
    project, tasks = studio_project
    backend = backend_factory()
    ls.api("POST", "/api/ml", json={"url": backend.url, "project": project, "title": "baal"})
    for tid, intent in tasks[:12]:
        _annotate(ls, tid, intent)
    _wait_backend(backend, project, lambda b: b["labels"] == 12 and b["details"] and b["details"][-1]["n_labels"] == 12,
                  180, "a version on the 12 labels the webhooks brought")

    backend.stop()
    for tid, intent in tasks[12:32]:
        _annotate(ls, tid, intent)  # Label Studio's webhook to the stopped backend fails, and is not retried

    restarted = time.monotonic()
    backend = backend_factory(port=backend.port)
    up = time.monotonic() - restarted
    body = _wait_backend(backend, project, lambda b: b["labels"] == 32 and b["details"][-1]["n_labels"] == 32,
                         60 - up, "a version on all 32 labels within 60 s of restarting")
    caught_up = time.monotonic() - restarted
    print(f"restarted backend up in {up:.1f} s; all 32 labels stored and trained on {caught_up:.1f} s after restarting")
    assert caught_up < 60 and body["labels"] == 32
