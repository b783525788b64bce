"""The label-name prior through the HTTP app, with the packaged MiniLM: first predictions from the
choices' names, pre-filled only once the project's labels show the names work, and versions that
learn on top of the prior (or switch it off for names that say nothing)."""
import json

import numpy as np

from tests.helpers import annotation_event, label_config, task

INTENTS = ["translate", "transfer", "timer", "weather"]
CODES = ["K00", "K01", "K02", "K03"]
TEXTS = {
    "translate": ["how do you say thank you in french", "what is the spanish word for library",
                  "translate good morning into german", "how would i say cat in italian"],
    "transfer": ["move 300 dollars from checking to savings", "send money from my account to my wife's",
                 "transfer 50 euros to my savings account", "wire funds between my two accounts"],
    "timer": ["set a timer for ten minutes", "start a countdown of 30 seconds",
              "please time 5 minutes for the eggs", "set timer for twenty minutes"],
    "weather": ["will it rain tomorrow", "what's the forecast for this weekend",
                "is it going to be sunny in boston", "how cold is it outside today"],
}


def _predict(client, config, texts, project="1"):
    body = client.post("/predict", json={"project": project, "label_config": config,
                                         "tasks": [task(i + 1, t) for i, t in enumerate(texts)]})
    assert body.status_code == 200, body.json
    return body.json["results"]


def _label(client, project, config, names, per_class, start=1, classes=INTENTS):
    aid = start
    for k in range(per_class):
        for name, intent in zip(names, classes):
            event = annotation_event(int(project), config, 1000 + aid, TEXTS[intent][k], name, aid, from_name="intent")
            assert client.post("/webhook", json=event).status_code == 200
            aid += 1


def test_first_predictions_come_from_the_names_and_prefill_once_labels_confirm_them(make_app):
    client = make_app(MIN_LABELS=10)
    config = label_config(INTENTS)
    probe = [TEXTS[i][3] for i in INTENTS]
    # no label yet: nobody knows whether the names work, so nothing is pre-filled ...
    before = _predict(client, config, probe)
    assert all(r["result"] == [] and r["model_version"].startswith("v0000@") for r in before)
    # ... four labels the prior gets right (below MIN_LABELS: still no version) confirm it
    _label(client, "1", config, INTENTS, per_class=1)
    client.engine.jobs.wait_idle("1", 60)
    after = _predict(client, config, probe)
    assert [r["model_version"].split("@")[0] for r in after] == ["v0000"] * 4
    assert [r["result"][0]["value"]["choices"][0] for r in after] == INTENTS


def test_cryptic_names_never_prefill_and_versions_learn_without_them(make_app, tmp_path):
    client = make_app(MIN_LABELS=8)
    config = label_config(CODES)
    _label(client, "2", config, CODES, per_class=1)
    assert client.engine.jobs.wait_idle("2", 60)
    assert all(r["result"] == [] for r in _predict(client, config, [TEXTS[i][3] for i in INTENTS], project="2"))
    # with labels, a version: the prior's scale is fitted to them; the codes earn (almost) none
    _label(client, "2", config, CODES, per_class=3, start=5)
    assert client.engine.jobs.wait_idle("2", 120)
    versions = client.get("/versions?project=2").json
    assert versions["details"], versions["last_run"]
    assert versions["details"][-1]["metrics"]["name_scale"] <= 5


def test_a_version_learns_on_top_of_the_prior(make_app, tmp_path):
    client = make_app(MIN_LABELS=8)
    config = label_config(INTENTS)
    _label(client, "3", config, INTENTS, per_class=2)
    assert client.engine.jobs.wait_idle("3", 120)
    body = client.get("/versions?project=3").json
    assert body["details"][-1]["metrics"]["prior_scale"] >= 10
    path = tmp_path / "models" / "projects" / "3" / "versions" / body["current"]
    meta = json.loads((path / "classifier.json").read_text())
    assert meta["kind"] == "head+prior"  # code from before the prior refuses it instead of serving the head alone
    assert meta["prior_scale"] == body["details"][-1]["metrics"]["prior_scale"]
    held_out = [TEXTS[i][3] for i in INTENTS]
    results = _predict(client, config, held_out, project="3")
    assert [r["result"][0]["value"]["choices"][0] for r in results] == INTENTS
    # the saved version, loaded as a restarted server would, is the head on top of the same prior
    from baal_backend.model import load_classifier_dir

    served = client.engine.classifier("3")[1]
    loaded = load_classifier_dir(path, client.engine.encoder, 128)
    assert loaded.prior.scale == served.prior.scale and (loaded.prior.prototypes == served.prior.prototypes).all()
    emb = client.engine.encoder.embed(held_out)
    bare = loaded.head.eval()
    import torch
    with torch.no_grad():
        head_only = bare.hidden(torch.from_numpy(emb))
        head_only = bare.out[1](head_only).numpy()
    assert (head_only + loaded.prior.logits(emb)).argmax(1).tolist() == list(range(4))  # what it was trained as
    # switched off, the version has no prior
    off = make_app(model_dir=tmp_path / "off", MIN_LABELS=8, LABEL_PRIOR="false")
    _label(off, "3", config, INTENTS, per_class=2)
    assert off.engine.jobs.wait_idle("3", 120)
    assert "prior_scale" not in off.get("/versions?project=3").json["details"][-1]["metrics"]


def test_one_class_or_one_task_never_confirms_the_prior(make_app):
    """Labels all in one class (a prior that always says that class would look perfect), or many
    annotations of one task, are no evidence that the names work."""
    client = make_app(MIN_LABELS=20)
    config = label_config(INTENTS)
    for k in range(4):  # 4 weather labels, all right
        event = annotation_event(4, config, 100 + k, TEXTS["weather"][k], "weather", 100 + k, from_name="intent")
        assert client.post("/webhook", json=event).status_code == 200
    assert all(r["result"] == [] for r in _predict(client, config, [TEXTS[i][3] for i in INTENTS], project="4"))
    for k in range(6):  # one task, six annotators
        event = annotation_event(5, config, 200, TEXTS["timer"][0], "timer", 300 + k, from_name="intent")
        event["annotation"]["id"] = 300 + k
        assert client.post("/webhook", json=event).status_code == 200
    assert all(r["result"] == [] for r in _predict(client, config, [TEXTS[i][3] for i in INTENTS], project="5"))


def test_predicted_tasks_become_the_pool_a_version_refines_its_prior_on(make_app, tmp_path):
    client = make_app(MIN_LABELS=8)
    config = label_config(INTENTS)
    assert client.post("/setup", json={"project": "6.1", "schema": config}).status_code == 200
    pool = [TEXTS[i][k] for k in (2, 3) for i in INTENTS]
    _predict(client, config, pool, project="6")
    store = client.engine.project("6").store
    assert [text for _, text in store.unlabeled()] == pool
    _label(client, "6", config, INTENTS, per_class=2)
    assert client.engine.jobs.wait_idle("6", 120)
    assert len(store.unlabeled()) == len(pool)  # those tasks (ids 1..8) carry no label
    version = client.engine.classifier("6")[1]
    names = client.engine.label_prior(client.engine.schema("6"))
    # the served prior is no longer the names': it moved toward the labeled and the pool texts
    assert not np.allclose(version.prior.prototypes, names.prototypes)
    emb = client.engine.encoder.embed(pool)
    assert (version.prior.logits(emb).argmax(1) == np.tile(np.arange(4), 2)).all()
