"""The HTTP app in process, with the real model: what Label Studio sends, what it gets back."""
import time

import numpy as np
import pytest

from tests.helpers import SENTIMENT, annotation_event, label_config, sentiment_events, task

INTENTS = [f"intent_{i:03d}" for i in range(150)]


def _predict(client, tasks, config=SENTIMENT, project="1.1795516926"):
    resp = client.post("/predict", json={"tasks": tasks, "project": project, "label_config": config, "params": {}})
    assert resp.status_code == 200, resp.json
    return resp.json["results"]


def _train(client, events, project="1"):
    for event in events:
        resp = client.post("/webhook", json=event)
        assert resp.status_code == 200, resp.json
    assert client.engine.jobs.wait_idle(project, 120)


@pytest.mark.parametrize("labels, config", [(["Positive", "Negative"], SENTIMENT), (INTENTS, label_config(INTENTS))])
def test_predict_one_result_per_task_in_order(make_app, labels, config):
    client = make_app()
    tasks = [task(i, f"text number {i}") for i in range(25)]
    results = _predict(client, tasks, config)
    assert len(results) == 25
    for res in results:
        # before any training the base model does not know these classes: a score, no guess
        assert res["model_version"].startswith("v0000@") and res["result"] == []
        assert 0.0 <= res["score"] <= 1.0
    _train(client, [_relabel(e, config, labels) for e in sentiment_events(1, 20)])
    for res in _predict(client, tasks, config):
        (region,) = res["result"]
        assert region["type"] == "choices" and region["value"]["choices"][0] in labels
        assert region["from_name"] in ("sentiment", "intent") and region["to_name"] == "text"
        assert 0.0 < region["score"] <= 1.0 and 0.0 <= res["score"] <= 1.0 and not res["model_version"].startswith("v0000@")


def _relabel(event, config, labels):
    """A sentiment event moved to another config: its class becomes labels[0] or labels[1]."""
    region = event["annotation"]["result"][0]
    region["value"]["choices"] = [labels[0] if region["value"]["choices"] == ["Positive"] else labels[1]]
    region["from_name"] = "sentiment" if labels[0] == "Positive" else "intent"
    event["project"]["label_config"] = config
    return event


def test_results_follow_task_order(make_app):
    client = make_app()
    _train(client, sentiment_events(1, 20))
    texts = ["I love it, wonderful", "awful, I hate it", "so happy and delighted", "terrible and horrible"] * 5
    order = np.random.default_rng(0).permutation(len(texts))
    results = _predict(client, [task(int(i), texts[i]) for i in order])
    expected = ["Positive" if i % 2 == 0 else "Negative" for i in order]
    assert [r["result"][0]["value"]["choices"][0] for r in results] == expected


def test_malformed_tasks_do_not_spoil_the_batch(make_app, caplog):
    client = make_app()
    tasks = [task(1, "fine"), task(2, ""), task(3, None), task(4, 42), {"id": 5, "data": {"other": "x"}},
             {"id": 6}, "not even a dict", task(8, "also fine")]
    results = _predict(client, tasks)
    assert len(results) == len(tasks)
    assert [r["score"] is not None for r in results] == [True, False, False, False, False, False, False, True]
    assert all(r["result"] == [] for r in results[1:7])
    assert "task 2: no prediction: the task's 'text' is empty" in caplog.text
    assert "is a int, not text" in caplog.text


def test_score_orientation_lowest_is_least_certain(make_app):
    """With HEURISTIC=margin the rank score is exactly the top-2 margin: low = uncertain."""
    client = make_app(HEURISTIC="margin", MIN_LABELS=10)
    _train(client, sentiment_events(1, 20))
    results = _predict(client, [task(i, t) for i, t in enumerate(["I love it", "I hate it", "it is a chair"])])
    for res in results:
        p = res["result"][0]["score"]
        assert res["score"] == pytest.approx(2 * p - 1, abs=1e-5)
    raw = make_app(model_dir=client.engine.settings.model_dir, SCORE_MODE="uncertainty", HEURISTIC="margin")
    raw_results = _predict(raw, [task(1, "I love it")])
    p = raw_results[0]["result"][0]["score"]
    assert raw_results[0]["score"] == pytest.approx(1 - (2 * p - 1), abs=1e-5)  # highest = most informative


def test_webhook_trains_publishes_and_predict_serves_new_version(make_app):
    client = make_app()
    assert client.post("/setup", json={"project": "1.1795516926", "schema": SENTIMENT}).json == {"model_version": f"v0000@{client.engine.instance}"}
    started = time.perf_counter()
    _train(client, sentiment_events(1, 20))
    versions = client.get("/versions?project=1").json
    assert versions["current"] == versions["versions"][-1] and versions["current"].startswith("v0")
    assert versions["details"][-1]["n_labels"] == 20
    assert versions["details"][-1]["metrics"]["eval"] == "5-fold cv"  # 20 labels: too few for a slice
    assert 0 <= versions["details"][-1]["metrics"]["macro_f1"] <= 1
    results = _predict(client, [task(1, "I really love this, wonderful"), task(2, "horrible and awful, I hate it")])
    assert {r["model_version"] for r in results} == {versions["studio_version"]} == {f"{versions['current']}@{client.engine.instance}"}
    assert [r["result"][0]["value"]["choices"][0] for r in results] == ["Positive", "Negative"]
    assert client.post("/setup", json={"project": "1.1795516926", "schema": SENTIMENT}).json["model_version"] == versions["studio_version"]
    assert client.post("/versions", json={"project": "1.1795516926"}).json["versions"] == versions["versions"]
    assert time.perf_counter() - started < 60


def test_burst_of_30_gives_at_most_two_runs_and_last_has_all(make_app):
    client = make_app()
    answered = []
    for event in sentiment_events(1, 30):
        t0 = time.perf_counter()
        assert client.post("/webhook", json=event).status_code == 200
        answered.append(time.perf_counter() - t0)
    assert max(answered) < 0.2  # Label Studio waits 1 s; training never runs in the request
    assert client.engine.jobs.wait_idle("1", 120)
    details = client.get("/versions?project=1").json["details"]
    assert 1 <= len(details) <= 2
    assert details[-1]["n_labels"] == 30
    assert client.engine.project("1").store.count() == 30


def test_a_grown_pool_alone_gives_no_new_version(make_app):
    """The push (and Label Studio) asking predictions for more tasks grows the pool; a late
    START_TRAINING on the same labels then publishes nothing (it published a twin version before)."""
    client = make_app()
    _train(client, sentiment_events(1, 10))
    _predict(client, [task(100 + i, f"an unlabeled review number {i}") for i in range(40)])
    _train(client, [{"action": "START_TRAINING", "project": {"id": 1, "label_config": SENTIMENT}}])
    assert [d["n_labels"] for d in client.get("/versions?project=1").json["details"]] == [10]
    assert client.engine.project("1").last_run["status"] == "skipped"


def test_below_min_labels_no_version_and_reason_is_reported(make_app):
    client = make_app(MIN_LABELS=10)
    _train(client, sentiment_events(1, 9))
    body = client.get("/versions?project=1").json
    assert body["versions"] == [] and body["current"] == "v0000"
    assert "MIN_LABELS" in body["last_run"]["reason"]
    one_class = [e for e in sentiment_events(1, 30, start_id=100) if e["annotation"]["result"][0]["value"]["choices"] == ["Positive"]]
    client2 = make_app(model_dir=client.engine.settings.model_dir.parent / "other")
    _train(client2, one_class)
    assert client2.get("/versions?project=1").json["versions"] == []


def test_update_delete_cancel_and_other_events(make_app):
    client = make_app()
    store = client.engine.project("1").store
    ev = annotation_event(1, SENTIMENT, 5, "nice", "Positive", 50)
    client.post("/webhook", json=ev)
    client.post("/webhook", json=annotation_event(1, SENTIMENT, 5, "nice", "Negative", 50, action="ANNOTATION_UPDATED"))
    assert store.get(50).label == "Negative"
    client.post("/webhook", json=annotation_event(1, SENTIMENT, 5, "nice", "Negative", 50, action="ANNOTATION_UPDATED", cancelled=True))
    assert store.get(50) is None  # a skipped task is not a label
    for i in range(3):
        client.post("/webhook", json=annotation_event(1, SENTIMENT, 10 + i, f"t{i}", "Positive", 60 + i))
    client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": 1, "label_config": SENTIMENT},
                                  "annotations": [{"id": 60}, {"id": 61}]})
    client.post("/webhook", json={"action": "ANNOTATION_DELETED", "project": {"id": 1, "label_config": SENTIMENT},
                                  "annotation": {"id": 62}})
    assert store.count() == 0
    assert client.engine.jobs.wait_idle("1", 60)
    runs = client.engine.jobs.runs("1")
    # a project edit that leaves the classes alone trains nothing; unknown actions are ignored
    resp = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1, "label_config": SENTIMENT}})
    assert resp.json["status"] == "ok" and "training" not in resp.json and not client.engine.jobs.is_training("1")
    resp = client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 1, "label_config": SENTIMENT}, "tasks": []})
    assert resp.json["status"] == "ignored"
    assert client.engine.jobs.runs("1") == runs
    resp = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1, "label_config": SENTIMENT}})
    assert resp.json["training"] in ("started", "queued")
    client.engine.jobs.wait_idle("1", 60)
    assert client.engine.jobs.runs("1") == runs + 1
    # a choice that is not in the config is not stored
    client.post("/webhook", json=annotation_event(1, SENTIMENT, 99, "x", "Neutral", 99))
    assert store.get(99) is None


def test_two_projects_stay_isolated(make_app):
    client = make_app()
    topics = label_config(["sport", "politics", "tech"], from_name="topic")
    _train(client, sentiment_events(1, 12), project="1")
    events = []
    for i in range(12):
        label = ["sport", "politics", "tech"][i % 3]
        events.append(annotation_event(2, topics, 500 + i, f"{label} story {i}", label, 500 + i, from_name="topic"))
    _train(client, events, project="2")
    eng = client.engine
    assert {lb.label for lb in eng.project("1").store.all()} == {"Positive", "Negative"}
    assert {lb.label for lb in eng.project("2").store.all()} == {"sport", "politics", "tech"}
    assert eng.project("1").registry.list() and eng.project("2").registry.list()
    v2 = client.get("/versions?project=2").json["details"][-1]
    assert v2["n_labels"] == 12
    res1 = _predict(client, [task(1, "a match")], SENTIMENT, project="1.1")
    res2 = _predict(client, [task(1, "a match", project=2)], topics, project="2.1")
    assert res1[0]["result"][0]["value"]["choices"][0] in ("Positive", "Negative")
    assert res2[0]["result"][0]["from_name"] == "topic"
    assert res2[0]["result"][0]["value"]["choices"][0] in ("sport", "politics", "tech")
    assert res1[0]["model_version"] == f"{eng.current_version('1')}@{eng.instance}" and res2[0]["model_version"] == f"{eng.current_version('2')}@{eng.instance}"


def test_restart_keeps_labels_version_and_predicts_without_setup(make_app, tmp_path):
    client = make_app()
    _train(client, sentiment_events(1, 12))
    version = client.engine.current_version("1")
    # a new process over the same MODEL_DIR: no /setup, and /predict without a label config
    restarted = make_app(model_dir=client.engine.settings.model_dir)
    assert restarted.engine.project("1").store.count() == 12
    resp = restarted.post("/predict", json={"tasks": [task(1, "I love this")]})
    assert resp.status_code == 200 and resp.json["results"][0]["model_version"] == f"{version}@{client.engine.instance}"
    assert restarted.get("/versions?project=1").json["current"] == version


def test_bad_requests_get_4xx_with_a_reason(make_app):
    client = make_app()
    bad = '<View><Text name="t" value="$text"/></View>'
    regions = SENTIMENT.replace('choice="single"', 'choice="single" perRegion="true"')
    r = client.post("/setup", json={"project": "3.1", "schema": bad})
    assert r.status_code == 422 and "no <Choices>" in r.json["error"]
    r = client.post("/predict", json={"project": "3.1", "tasks": [task(1, "x")], "label_config": regions})
    assert r.status_code == 422 and "perRegion" in r.json["error"]
    r = client.post("/predict", json={"project": "4.1", "tasks": [task(1, "x")]})
    assert r.status_code == 422 and "no label config yet" in r.json["error"]
    r = client.post("/predict", json={"project": "1.1", "tasks": "nope", "label_config": SENTIMENT})
    assert r.status_code == 400 and "list" in r.json["error"]
    r = client.post("/predict", data="not json", content_type="application/json")
    assert r.status_code == 400
    r = client.post("/webhook", json={"project": {"id": 1}})
    assert r.status_code == 400 and "action" in r.json["error"]
    r = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": SENTIMENT}})
    assert r.status_code == 400 and "annotation object" in r.json["error"]
    r = client.post("/setup", json={"project": "../etc", "schema": SENTIMENT})
    assert r.status_code == 400 and "project" in r.json["error"]
    assert client.get("/versions").status_code == 400
    assert client.get("/health").json["status"] == "UP"


def test_cold_start_serves_one_text_per_topic_first(make_app):
    """Before any version, the lowest scores go to k-means representatives (k = MIN_LABELS), not to an
    untrained model's noise: the first 3 tasks served cover the 3 topics."""
    client = make_app(MIN_LABELS=3)
    groups = {
        "football": ["the striker scored a goal", "the match ended in a draw", "the goalkeeper saved a penalty"],
        "cooking": ["simmer the sauce for ten minutes", "add salt and pepper to taste", "bake the cake until golden"],
        "banking": ["transfer money to my savings account", "what is my credit card balance", "open a new bank account"],
    }
    texts, topic = [], []
    for name, items in groups.items():
        for i in range(12 if name == "football" else 6):
            texts.append(f"{items[i % 3]}")
            topic.append(name)
    results = _predict(client, [task(i, t) for i, t in enumerate(texts)])
    scores = np.array([r["score"] for r in results])
    first = np.argsort(scores)[:3]
    assert {topic[i] for i in first} == set(groups)
    assert np.sum(scores < 0.5) == 3


def test_spanish_texts_on_the_english_encoder_are_named_in_health(make_app):
    """The design's second story labels Spanish tweets: the English-only default says so, once,
    with the setting to change, in /health (and its log)."""
    from tests.unit.test_language import SPANISH

    client = make_app()
    spanish = SPANISH * 2
    _predict(client, [task(i, text) for i, text in enumerate(spanish, start=1)])
    problems = client.get("/health").json["problems"]
    assert any("not English" in p and "BASELINE_MODEL_NAME" in p for p in problems), problems
    _predict(client, [task(i, text) for i, text in enumerate(spanish, start=1)], project="2.1795516926")
    assert len([p for p in client.get("/health").json["problems"] if "not English" in p]) == 2  # per project
