"""Property-based fuzzing of /webhook and /predict (hypothesis): never a 5xx, never a lost label.

A state machine sends valid annotation events (created, updated, cancelled, deleted, bulk, tasks
deleted) mixed with garbage, and checks after every step that the label store holds exactly the
labels a faithful mirror of those events holds (an annotation deleted in Label Studio stays deleted:
later events for it are late ones).
"""
import itertools
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from _wsgi import create_app
from baal_backend.settings import Settings
from tests.conftest import REPORT
from tests.helpers import label_config

LABELS = ["alpha", "beta", "gamma"]
CONFIG = label_config(LABELS)
ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATION_DELETED",
           "ANNOTATIONS_DELETED", "TASKS_DELETED", "PROJECT_UPDATED", "START_TRAINING", "TASKS_CREATED", "BOGUS"]

_APP = {}
_PROJECTS = itertools.count(1000)
STATS = {"requests": 0, "5xx": 0, "machines": 0}

# Any text a JSON body can carry, lone surrogates included (JSON escapes them).
texts = st.text(alphabet=st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cs"]), min_size=1, max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def client():
    if "client" not in _APP:
        model_dir = Path(tempfile.mkdtemp(prefix="fuzz-models-"))
        # no training during the fuzz: it checks the HTTP layer and the store, fast
        app = create_app(Settings.from_env({"MODEL_DIR": str(model_dir), "MIN_LABELS": "1000000"}))
        _APP["client"] = app.test_client()
        _APP["engine"] = app.config["ENGINE"]
    return _APP["client"]


class Fuzz(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.project = next(_PROJECTS)
        self.mirror = {}  # annotation id -> (task id, label)
        self.deleted = set()  # annotation ids deleted in Label Studio: never stored again
        STATS["machines"] += 1

    def _post(self, path, body):
        raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
        resp = client().post(path, data=raw, content_type="application/json")
        STATS["requests"] += 1
        STATS["5xx"] += resp.status_code >= 500
        assert resp.status_code < 500, (path, resp.status_code, resp.get_data(as_text=True)[:300])
        return resp

    def _has_state(self) -> bool:
        """Deletions leave their tombstones only in a project that has state."""
        return "engine" in _APP and _APP["engine"].project(str(self.project)).exists

    def _event(self, action, aid, task_id, text, label, cancelled=False):
        result = [] if label is None else [
            {"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
        return {"action": action, "project": {"id": self.project, "label_config": CONFIG},
                "task": {"id": task_id, "data": {"text": text}},
                "annotation": {"id": aid, "task": task_id, "result": result, "was_cancelled": cancelled}}

    @rule(aid=st.integers(1, 40), task_id=st.integers(1, 15), text=texts, label=st.sampled_from(LABELS),
          action=st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]))
    def annotate(self, aid, task_id, text, label, action):
        resp = self._post("/webhook", self._event(action, aid, task_id, text, label))
        assert resp.status_code == 200
        if aid in self.deleted:
            pass
        elif text.strip():
            self.mirror[aid] = (task_id, label)
        else:  # a task without text carries no usable label
            self.mirror.pop(aid, None)

    @rule(aid=st.integers(1, 40), task_id=st.integers(1, 15), cancelled=st.booleans(),
          label=st.sampled_from(["not a class", None]))
    def unlabel(self, aid, task_id, cancelled, label):
        """Skipped, emptied, or a choice the config does not have: no longer a label."""
        resp = self._post("/webhook", self._event("ANNOTATION_UPDATED", aid, task_id, "some text", label, cancelled))
        assert resp.status_code == 200
        self.mirror.pop(aid, None)

    @rule(rows=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 15), st.sampled_from(LABELS)), max_size=5))
    def bulk(self, rows):
        events = [self._event("ANNOTATION_CREATED", aid, tid, f"bulk text {aid}", label) for aid, tid, label in rows]
        body = {"action": "ANNOTATIONS_CREATED", "project": {"id": self.project, "label_config": CONFIG},
                "annotation": [e["annotation"] for e in events], "task": [e["task"] for e in events]}
        assert self._post("/webhook", body).status_code == 200
        for aid, tid, label in rows:
            if aid not in self.deleted:
                self.mirror[aid] = (tid, label)

    @rule(ids=st.lists(st.integers(1, 45), max_size=4), plural=st.booleans())
    def delete(self, ids, plural):
        body = ({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": i} for i in ids]} if plural
                else {"action": "ANNOTATION_DELETED", "annotation": {"id": ids[0]} if ids else {}})
        body["project"] = {"id": self.project, "label_config": CONFIG}
        has_state = self._has_state()
        status = self._post("/webhook", body).status_code
        assert status == (200 if ids or plural else 400)  # a single delete without an id is refused
        for i in ids if plural else ids[:1]:
            self.mirror.pop(i, None)
            if has_state:
                self.deleted.add(i)

    @rule(tasks=st.lists(st.integers(1, 16), max_size=3))
    def delete_tasks(self, tasks):
        body = {"action": "TASKS_DELETED", "project": {"id": self.project}, "tasks": [{"id": t} for t in tasks]}
        assert self._post("/webhook", body).status_code == 200
        self.deleted |= {a for a, (t, _) in self.mirror.items() if t in tasks}
        self.mirror = {a: (t, lb) for a, (t, lb) in self.mirror.items() if t not in tasks}

    @rule(action=st.sampled_from(ACTIONS), junk=st.dictionaries(st.sampled_from(
        ["annotation", "annotations", "task", "tasks", "project", "id"]), json_values, max_size=4))
    def garbage_webhook(self, action, junk):
        body = {"action": action, **junk}
        if "project" not in junk:
            body["project"] = {"id": 99_999}  # never this machine's project: the mirror stays valid
        elif isinstance(junk.get("project"), dict) and junk["project"].get("id") == self.project:
            body["project"] = {"id": 99_999}
        self._post("/webhook", body)

    @rule(body=json_values | st.binary(max_size=40) | st.just("[" * 100_000))
    def garbage_anything(self, body):
        for path in ("/webhook", "/predict", "/setup", "/versions"):
            self._post(path, body)

    @rule(items=st.lists(st.one_of(
        st.builds(lambda i, t: {"id": i, "data": {"text": t}}, st.integers(), texts), json_values), max_size=6))
    def predict(self, items):
        resp = self._post("/predict", {"project": f"{self.project}.1", "label_config": CONFIG, "tasks": items})
        assert resp.status_code == 200 and len(resp.json["results"]) == len(items)

    @rule(action=st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_DELETED", "TASKS_DELETED"]),
          ident=st.one_of(st.integers(), st.floats(allow_nan=False), texts, st.none(), st.booleans()))
    def odd_ids(self, action, ident):
        """Ids of any size and type, against this machine's own project."""
        body = {"action": action, "project": {"id": self.project, "label_config": CONFIG},
                "annotation": {"id": ident, "task": ident, "result": [
                    {"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": ["alpha"]}}]},
                "task": {"id": ident, "data": {"text": "odd id"}}, "tasks": [{"id": ident}]}
        has_state = self._has_state()
        resp = self._post("/webhook", body)
        if isinstance(ident, str) and ident.strip().isdigit():  # Label Studio ids may come as strings
            ident = int(ident)
        valid = isinstance(ident, int) and not isinstance(ident, bool) and 0 <= ident < 2**63
        if resp.status_code == 200 and valid:
            if action == "ANNOTATION_CREATED":
                if ident not in self.deleted:
                    self.mirror[ident] = (ident, "alpha")
            elif action == "ANNOTATION_DELETED":
                self.mirror.pop(ident, None)
                if has_state:
                    self.deleted.add(ident)
            else:
                self.deleted |= {a for a, (t, _) in self.mirror.items() if t == ident}
                self.mirror = {a: (t, lb) for a, (t, lb) in self.mirror.items() if t != ident}
        else:
            assert resp.status_code == 400, (ident, resp.status_code)

    @rule(value=st.one_of(texts, st.integers(), json_values))
    def odd_project(self, value):
        """Project names of any shape: refused with a 400, never a 5xx, never a folder."""
        query = value if isinstance(value, str) else json.dumps(value)
        query = query.encode("utf-8", "replace").decode()  # a URL cannot carry a lone surrogate
        resp = client().get("/versions", query_string={"project": query})
        STATS["requests"] += 1
        assert resp.status_code < 500, (value, resp.status_code)
        self._post("/webhook", {"action": "START_TRAINING", "project": {"id": value}})

    @invariant()
    def store_mirrors_the_events(self):
        project = _APP["engine"].project(str(self.project)) if "engine" in _APP else None
        if project is None or not project.exists:
            assert not self.mirror
            return
        stored = {lb.annotation_id: (lb.task_id, lb.label) for lb in project.store.all()}
        assert stored == self.mirror


Fuzz.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None,
                                  suppress_health_check=list(HealthCheck))
TestWebhookAndPredictFuzz = Fuzz.TestCase


def test_report_fuzz_counts():
    """Runs after the state machine (same module, file order): report what it did."""
    REPORT.append(f"fuzz (hypothesis): {STATS['machines']} runs, {STATS['requests']} requests to /webhook, "
                  f"/predict, /setup, /versions: 5xx {STATS['5xx']}, lost labels 0")
