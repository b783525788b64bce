"""Regression tests for the defects of the trust issue: each fails on the code before the fix.

In process, with the real model, through the HTTP app as Label Studio calls it.
"""
import logging
import threading

import numpy as np
import pytest
import torch

from baal_backend.predictor import align
from baal_backend.training import TrainConfig, train_head_on_embeddings
from tests.helpers import SENTIMENT, annotation_event, label_config, sentiment_events, task, version_of
from tests.processes import free_port
from tests.tiny_models import tiny_bert


def _send(client, events, project="1", wait=True):
    for event in events:
        resp = client.post("/webhook", json=event)
        assert resp.status_code == 200, resp.json
    if wait:
        assert client.engine.jobs.wait_idle(project, 300)


def _versions(client, project=1):
    return client.get(f"/versions?project={project}").json


def _class_events(project, classes, per_class, start_id=1, config=None):
    """per_class annotation events for each of `classes` intents (distinct texts)."""
    config = config or label_config(classes)
    events, aid = [], start_id
    for k in range(per_class):
        for c, name in enumerate(classes):
            text = f"{name.replace('_', ' ')} request number {k}"
            event = annotation_event(project, config, aid, text, name, aid, from_name="intent")
            events.append(event)
            aid += 1
    return events


@pytest.mark.parametrize("classes, per_class", [(40, 3), (150, 2)])
def test_many_class_projects_keep_publishing(make_app, classes, per_class):
    """Was: the stratified held-out split raised ValueError, no version, `/versions` silent."""
    client = make_app(MIN_LABELS=10)
    names = [f"intent_{i:03d}" for i in range(classes)]
    _send(client, _class_events(1, names, per_class))
    body = _versions(client)
    assert body["last_run"]["status"] == "published", body["last_run"]
    assert body["details"][-1]["n_labels"] == classes * per_class
    assert body["details"][-1]["metrics"]["eval"] in ("holdout", "5-fold cv")


def test_a_failed_run_is_recorded_and_reported(make_app, tmp_path):
    """Was: a failing run only left a traceback in the log; /versions kept saying all is well."""
    client = make_app(MIN_LABELS=10)
    _send(client, sentiment_events(1, 12))
    good = client.engine.current_version("1")
    # the label config file becomes unreadable garbage: the next run cannot even parse it
    (client.engine.settings.model_dir / "projects" / "1" / "label_config.xml").write_text("<View>")
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}})
    assert client.engine.jobs.wait_idle("1", 60)
    body = _versions(client)
    assert body["last_run"]["status"] == "failed" and "label config" in body["last_run"]["error"]
    assert body["last_run"]["at"] and body["current"] == good
    health = client.get("/health").json
    assert health["failed_runs"]["1"]["status"] == "failed"


def test_a_failing_sync_still_trains_on_the_stored_labels(make_app):
    """Was: with Label Studio down (or a 401), "Start training" aborted the whole run."""
    client = make_app(MIN_LABELS=10, LABEL_STUDIO_URL=f"http://127.0.0.1:{free_port()}", LABEL_STUDIO_API_KEY="x" * 40)
    _send(client, sentiment_events(1, 12))  # the first label asked for a sync too: it failed, training went on
    first = _versions(client)
    assert first["details"] and first["details"][-1]["n_labels"] == 12
    _send(client, sentiment_events(1, 4, start_id=100), wait=False)
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1, "label_config": SENTIMENT}})
    assert client.engine.jobs.wait_idle("1", 120)
    body = _versions(client)
    assert body["details"][-1]["n_labels"] == 16
    assert body["last_run"]["sync"]["status"] == "failed" and "ConnectionError" in body["last_run"]["sync"]["error"]


def test_removing_a_class_renormalises_and_retrains(make_app):
    """Was: rows summed below 1 and baal read them as logits (margin 0.149 instead of 0.3); the
    edit (PROJECT_UPDATED) was ignored and the stale version kept serving."""
    probs = np.zeros((1, 3, 2))
    probs[0, :, 0] = [0.5, 0.3, 0.2]
    probs[0, :, 1] = [0.5, 0.3, 0.2]
    two = align(probs, ["a", "b", "c"], ["a", "b"])
    assert np.allclose(two.sum(1), 1.0) and np.allclose(two[0, :, 0], [0.625, 0.375])

    client = make_app(MIN_LABELS=10, HEURISTIC="margin")
    three = label_config(["Positive", "Negative", "Neutral"], from_name="sentiment")
    events = sentiment_events(1, 12)
    for i, event in enumerate(_class_events(1, ["Neutral"], 6, start_id=500, config=three)):
        region = event["annotation"]["result"][0]
        region["from_name"] = "sentiment"
        events.append(event)
    for event in events:
        event["project"]["label_config"] = three
    _send(client, events)
    before = client.engine.current_version("1")
    # the Neutral class is removed in Label Studio: the edit arrives as PROJECT_UPDATED
    resp = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1, "label_config": SENTIMENT}})
    assert resp.status_code == 200
    assert client.engine.jobs.wait_idle("1", 120)
    after = client.engine.current_version("1")
    assert after != before
    meta = client.engine.project("1").registry.meta(after)
    assert meta["labels"] == ["Positive", "Negative"] and meta["n_labels"] == 12
    results = client.post("/predict", json={"project": "1.1", "label_config": SENTIMENT,
                                            "tasks": [task(1, "I love it"), task(2, "it is a chair")]}).json["results"]
    for res in results:
        p = res["result"][0]["score"]
        assert res["score"] == pytest.approx(2 * p - 1, abs=1e-5)  # margin of a row that sums to 1


def test_bulk_annotations_and_deleted_tasks_are_mirrored(make_app):
    """Was: ANNOTATIONS_CREATED (plural) and TASKS_DELETED were ignored: labels of deleted tasks
    stayed in training forever."""
    client = make_app(MIN_LABELS=10)
    events = sentiment_events(1, 12)
    bulk = {
        "action": "ANNOTATIONS_CREATED",
        "project": events[0]["project"],
        "annotation": [e["annotation"] for e in events],
        "task": [e["task"] for e in events],
    }
    assert client.post("/webhook", json=bulk).json["training"] in ("started", "queued")
    assert client.engine.jobs.wait_idle("1", 120)
    assert _versions(client)["details"][-1]["n_labels"] == 12
    deleted = {"action": "TASKS_DELETED", "project": events[0]["project"], "tasks": [{"id": 1}, {"id": 2}, {"id": 999}]}
    assert client.post("/webhook", json=deleted).status_code == 200
    assert client.engine.jobs.wait_idle("1", 120)
    meta = client.engine.project("1").registry.meta(client.engine.current_version("1"))
    assert meta["n_labels"] == 10 and not {1, 2} & set(meta["annotation_ids"])


def test_project_deleted_drops_its_state(make_app, caplog):
    client = make_app(MIN_LABELS=10)
    _send(client, sentiment_events(1, 12))
    root = client.engine.settings.model_dir / "projects" / "1"
    assert root.is_dir()
    with caplog.at_level(logging.WARNING):
        resp = client.post("/webhook", json={"action": "PROJECT_DELETED", "project": {"id": 1}})
    assert resp.status_code == 200 and not root.exists()
    assert "deleted in Label Studio" in caplog.text
    assert client.get("/versions?project=1").json["versions"] == []


def test_a_version_of_another_encoder_is_never_served(make_app, tmp_path):
    """Was: another embedding size gave a 500 on every /predict; the same size silently served a
    head on the wrong encoder."""
    client = make_app(MIN_LABELS=10)
    _send(client, sentiment_events(1, 12))
    trained = client.engine.current_version("1")
    # another size; the same size with other weights; MiniLM itself with one deep layer nudged
    encoders = [(tiny_bert(tmp_path / "bert-32", hidden=32), 32), (tiny_bert(tmp_path / "bert-384", hidden=384), 384),
                (_nudged_minilm(tmp_path / "minilm-nudged"), 384)]
    for other, hidden in encoders:
        switched = make_app(model_dir=client.engine.settings.model_dir, BASELINE_MODEL_NAME=str(other), MIN_LABELS=10)
        resp = switched.post("/predict", json={"project": "1.1", "tasks": [task(i, f"I love it {i}") for i in range(3)]})
        assert resp.status_code == 200
        results = resp.json["results"]
        assert {version_of(r["model_version"]) for r in results} == {"v0000"} and all(r["result"] == [] for r in results)
        assert switched.engine.jobs.wait_idle("1", 120)  # the misfit queued a retrain on the new encoder
        retrained = switched.engine.current_version("1")
        assert retrained != trained
        meta = switched.engine.project("1").registry.meta(retrained)
        assert meta["encoder"]["dim"] == hidden and meta["encoder"]["id"] == switched.engine.encoder.identity
        trained = retrained


def _nudged_minilm(path):
    from transformers import AutoModel, AutoTokenizer

    from baal_backend.settings import default_model_path

    model = AutoModel.from_pretrained(default_model_path())
    with torch.no_grad():
        model.encoder.layer[-1].output.dense.weight[0, 0] += 1e-3
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(path)
    return path


def test_a_version_that_cannot_be_loaded_is_refused_not_a_500(make_app):
    """Was: only a vanished version was handled; a corrupt one answered 500 on every /predict."""
    client = make_app(MIN_LABELS=10)
    _send(client, sentiment_events(1, 12))
    broken = client.engine.current_version("1")
    previous = [v for v in client.engine.project("1").registry.list() if v != broken]
    (client.engine.project("1").registry.path(broken) / "head.pt").write_bytes(b"not a checkpoint")
    restarted = make_app(model_dir=client.engine.settings.model_dir, MIN_LABELS=10)
    resp = restarted.post("/predict", json={"project": "1.1", "tasks": [task(1, "I love it")]})
    assert resp.status_code == 200
    assert version_of(resp.json["results"][0]["model_version"]) == (previous[-1] if previous else "v0000")  # the last good one
    assert restarted.engine.jobs.wait_idle("1", 120)  # the refusal queued a retrain
    assert restarted.engine.current_version("1") != broken
    assert version_of(restarted.post("/predict", json={"project": "1.1", "tasks": [task(1, "I love it")]}).json[
        "results"][0]["model_version"]) == restarted.engine.current_version("1")


def test_a_version_from_before_encoder_identities_still_serves(make_app):
    """Versions published before the encoder digest existed name their base model only: served
    when that name is the current one (no forced retrain on upgrade)."""
    import json

    client = make_app(MIN_LABELS=10)
    _send(client, sentiment_events(1, 12))
    version = client.engine.current_version("1")
    meta_file = client.engine.project("1").registry.path(version) / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["encoder"]
    meta_file.write_text(json.dumps(meta))
    restarted = make_app(model_dir=client.engine.settings.model_dir, MIN_LABELS=10)
    results = restarted.post("/predict", json={"project": "1.1", "tasks": [task(1, "I love it")]}).json["results"]
    assert version_of(results[0]["model_version"]) == version and results[0]["result"]


def test_predictions_of_a_version_with_a_removed_class_are_renormalised(make_app):
    """Between the config edit and the retrain, the old 3-class version serves 2-class rows that
    sum to 1: the margin score is exactly 2p - 1."""
    three = label_config(["Positive", "Negative", "Neutral"], from_name="sentiment")
    client = make_app(MIN_LABELS=10, HEURISTIC="margin", EPOCHS=20000, EVAL_FRACTION=0)  # the retrain takes a while
    events = sentiment_events(1, 12)
    for event in events:
        event["project"]["label_config"] = three
    _send(client, events)
    old = client.engine.current_version("1")
    resp = client.post("/predict", json={"project": "1.1", "label_config": SENTIMENT,
                                         "tasks": [task(1, "I love it"), task(2, "it is a chair")]})
    for res in resp.json["results"]:
        assert version_of(res["model_version"]) == old  # the retrain on 2 classes is still going
        p = res["result"][0]["score"]
        assert res["score"] == pytest.approx(2 * p - 1, abs=1e-5)
    assert client.engine.jobs.is_training("1")


def test_a_late_annotation_webhook_never_reverts_a_config_edit(make_app):
    three = label_config(["Positive", "Negative", "Neutral"], from_name="sentiment")
    client = make_app(MIN_LABELS=100)
    assert client.post("/setup", json={"project": "1.1", "schema": SENTIMENT}).status_code == 200
    client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1, "label_config": three}})
    client.post("/webhook", json=sentiment_events(1, 1)[0])  # saved before the edit: carries the 2-class config
    assert client.engine.schema("1").labels == ("Positive", "Negative", "Neutral")


def test_ids_beyond_sqlite_integers_are_refused_with_a_reason(make_app):
    client = make_app(MIN_LABELS=100)
    _send(client, sentiment_events(1, 1))
    huge = annotation_event(1, SENTIMENT, 2**70, "I love it", "Positive", 2**64)
    for body in (huge, {"action": "TASKS_DELETED", "project": {"id": 1}, "tasks": [{"id": 2**70}]},
                 {"action": "ANNOTATION_DELETED", "project": {"id": 1}, "annotation": {"id": 2**70}}):
        resp = client.post("/webhook", json=body)
        assert resp.status_code == 400 and "2**63-1" in resp.json["error"]
    assert client.engine.project("1").store.count() == 1


def test_one_task_alone_gets_a_neutral_score(make_app):
    """Was: below MIN_LABELS tasks per request the cold-start score was the position: 0.0 alone."""
    client = make_app(MIN_LABELS=10)
    results = client.post("/predict", json={"project": "1.1", "label_config": SENTIMENT,
                                            "tasks": [task(1, "hello there")]}).json["results"]
    assert results[0]["score"] == 0.5 and results[0]["result"] == []


def test_an_identical_label_set_never_publishes_twice(make_app):
    """Was: Label Studio's "train on submission" toggle doubled every version."""
    client = make_app(MIN_LABELS=10)
    _send(client, sentiment_events(1, 12))
    published = _versions(client)["versions"]
    assert published
    for _ in range(2):
        client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1, "label_config": SENTIMENT}})
        assert client.engine.jobs.wait_idle("1", 60)
    body = _versions(client)
    assert body["versions"] == published
    assert body["last_run"]["status"] == "skipped" and "nothing changed" in body["last_run"]["reason"]
    # an edit of one label does train
    _send(client, [annotation_event(1, SENTIMENT, 1, sentiment_events(1, 1)[0]["task"]["data"]["text"], "Negative", 1,
                                    action="ANNOTATION_UPDATED")])
    assert len(_versions(client)["versions"]) == len(published) + 1


def test_refused_config_is_logged_and_leaves_no_state(make_app, caplog):
    client = make_app()
    ner = '<View><Labels name="label" toName="text"><Label value="PER"/></Labels><Text name="text" value="$text"/></View>'
    with caplog.at_level(logging.WARNING):
        resp = client.post("/setup", json={"project": "7.1", "schema": ner})
    assert resp.status_code == 422 and "(NER)" in resp.json["error"]
    assert "label config refused" in caplog.text and "(NER)" in caplog.text
    assert not (client.engine.settings.model_dir / "projects" / "7").exists()


def test_one_log_line_per_webhook(make_app, caplog):
    client = make_app(MIN_LABELS=50)
    events = sentiment_events(1, 3)
    with caplog.at_level(logging.INFO, logger="baal_backend.webhook"):
        _send(client, events)
        client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 1}})
    lines = [r.getMessage() for r in caplog.records if r.name == "baal_backend.webhook"]
    assert len(lines) == 4
    assert lines[0].startswith("webhook ANNOTATION_CREATED, project 1: stored annotation 1 = 'Positive'; training ")
    assert lines[-1] == "webhook TASKS_CREATED, project 1: ignored"


def test_versions_say_why_there_is_no_metric(make_app):
    client = make_app(MIN_LABELS=10, EVAL_FRACTION=0)
    _send(client, sentiment_events(1, 12))
    metrics = _versions(client)["details"][-1]["metrics"]
    assert {k: metrics[k] for k in ("eval", "reason")} == {"eval": "none", "reason": "EVAL_FRACTION=0 turns held-out quality off"}
    assert set(metrics) <= {"eval", "reason", "prior_scale", "name_scale"}


def test_seed_makes_training_reproducible_under_predict_traffic():
    """Was: training drew from torch's global random state, which /predict's MC draws also use."""
    class _Enc:
        dim = 16

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 16)).astype(np.float32)
    y = np.arange(40) % 3
    cfg = TrainConfig(epochs=5, batch_size=8, seed=7)
    stop = threading.Event()

    def traffic():  # MC-Dropout draws of concurrent /predict requests
        while not stop.is_set():
            torch.nn.functional.dropout(torch.ones(64, 64), 0.5, training=True)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        runs = [train_head_on_embeddings(_Enc(), ["a", "b", "c"], emb, y, cfg).head.state_dict() for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    for other in runs[1:]:
        assert all(torch.equal(runs[0][k], other[k]) for k in runs[0])


@pytest.mark.parametrize("tag, data, expected", [
    ('<HyperText name="page" value="$html"/>', "<html><body><p>I <b>love</b> this</p><script>x()</script></body></html>", "I love this"),
    ('<Paragraphs name="page" value="$dialogue" nameKey="speaker" textKey="phrase"/>',
     [{"speaker": "A", "phrase": "hello"}, {"speaker": "B", "phrase": "I love this"}], "A: hello\nB: I love this"),
])
def test_hypertext_and_paragraphs_are_served(make_app, tag, data, expected):
    """Was: a <Paragraphs> config was accepted at /setup but could never be predicted."""
    config = (f'<View>{tag}<Choices name="sentiment" toName="page" choice="single">'
              '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>')
    key = "html" if "HyperText" in tag else "dialogue"
    client = make_app(MIN_LABELS=4)
    assert client.post("/setup", json={"project": "3.1", "schema": config}).status_code == 200
    events = []
    for i, event in enumerate(sentiment_events(3, 6)):
        event["project"]["label_config"] = config
        event["task"]["data"] = {key: data}
        events.append(event)
    _send(client, events, project="3")
    stored = client.engine.project("3").store.all()
    assert stored and stored[0].text == expected
    resp = client.post("/predict", json={"project": "3.1", "label_config": config,
                                         "tasks": [{"id": 1, "data": {key: data}}]})
    assert resp.status_code == 200 and resp.json["results"][0]["score"] is not None
    assert resp.json["results"][0]["result"][0]["from_name"] == "sentiment"
