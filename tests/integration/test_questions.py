"""A config with a multi-label question and a single-choice one about the same text, through the
HTTP app with the real model: webhooks store both answers, one version learns both, /predict
pre-fills both, and the score follows the least certain question."""
import itertools

import numpy as np

from baal_backend.report import collect

from tests.helpers import NEGATIVE, POSITIVE, task

CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="topic" toName="text" choice="multiple"><Choice value="billing"/><Choice value="travel"/>'
    '<Choice value="card"/></Choices>'
    '<Choices name="mood" toName="text" choice="single"><Choice value="happy"/><Choice value="unhappy"/></Choices>'
    '<TextArea name="note" toName="text"/></View>'
)
TOPICS = {
    "billing": ["the invoice on my bill", "the monthly charge on my statement", "the fee I was billed"],
    "travel": ["my flight to Paris", "the hotel booking for my trip", "my train ticket abroad"],
    "card": ["my credit card", "the debit card PIN", "my contactless card"],
}
SETS = [("billing",), ("travel",), ("card",), ("billing", "card"), ("travel", "card"), ("billing", "travel")]


def _text(topics, k, happy):
    about = " and ".join(TOPICS[t][k % 3] for t in topics)
    feeling = (POSITIVE if happy else NEGATIVE)[k % len(POSITIVE)]
    return f"About {about}: {feeling}"


def _event(annotation_id, text, topics, mood):
    result = [{"from_name": "mood", "to_name": "text", "type": "choices", "value": {"choices": [mood]}}]
    if topics:
        result.append({"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": list(topics)}})
    return {"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": CONFIG},
            "task": {"id": annotation_id, "data": {"text": text}, "project": 1},
            "annotation": {"id": annotation_id, "task": annotation_id, "result": result}}


def test_two_questions_one_multi_label_both_learn_and_prefill(make_app):
    client = make_app(MIN_LABELS="10")
    assert client.post("/setup", json={"project": "1.1795516926", "schema": CONFIG}).status_code == 200
    rows = [(topics, k, happy) for k, (topics, happy) in enumerate(itertools.product(SETS, [True, False]))]
    rows = [(topics, k + j, happy) for j in range(3) for topics, k, happy in rows]  # 36 labels
    for i, (topics, k, happy) in enumerate(rows, start=1):
        resp = client.post("/webhook", json=_event(i, _text(topics, k, happy), topics, "happy" if happy else "unhappy"))
        assert resp.status_code == 200, resp.json
    assert client.engine.jobs.wait_idle("1", 300)
    details = client.get("/versions?project=1").json["details"]
    assert details and details[-1]["n_labels"] == 36
    questions = details[-1]["metrics"]["questions"]
    assert set(questions) == {"topic", "mood"} and questions["topic"]["micro_f1"] > 0.6
    counts = collect(client.engine, "1")["labels_per_class"]  # the report page: the first question's choices
    assert counts == {name: sum(name in topics for topics, _, _ in rows) for name in TOPICS}

    tests = [(topics, k, happy) for k, (topics, happy) in enumerate(itertools.product(SETS, [True, False]), start=7)]
    tasks = [task(100 + i, _text(topics, k, happy)) for i, (topics, k, happy) in enumerate(tests)]
    resp = client.post("/predict", json={"tasks": tasks, "project": "1.1795516926", "label_config": CONFIG})
    assert resp.status_code == 200, resp.json
    results = resp.json["results"]
    assert len(results) == len(tests)
    moods_right, topic_hits, topic_total = 0, 0, 0
    for (topics, _, happy), result in zip(tests, results):
        by_name = {item["from_name"]: item for item in result["result"]}
        assert set(by_name) == {"topic", "mood"}  # the TextArea gets nothing
        assert all(item["to_name"] == "text" and item["type"] == "choices" and 0 <= item["score"] <= 1
                   for item in by_name.values())
        moods_right += by_name["mood"]["value"]["choices"] == ["happy" if happy else "unhappy"]
        predicted = set(by_name["topic"]["value"]["choices"])
        topic_hits += len(predicted & set(topics))
        topic_total += len(predicted) + len(topics)
        assert 0 <= result["score"] <= 1
    assert moods_right >= 0.8 * len(tests)
    assert 2 * topic_hits / topic_total > 0.6  # micro-F1 of the pre-filled topics


def test_a_question_with_too_few_labels_waits_while_the_other_trains(make_app):
    client = make_app(MIN_LABELS="6")
    client.post("/setup", json={"project": "1.1795516926", "schema": CONFIG})
    for i in range(1, 9):  # moods only: the topic question is shown and left blank, all the same
        text = (POSITIVE if i % 2 else NEGATIVE)[i]
        event = _event(i, text, (), "happy" if i % 2 else "unhappy")
        assert client.post("/webhook", json=event).status_code == 200
    assert client.engine.jobs.wait_idle("1", 300)
    metrics = client.get("/versions?project=1").json["details"][-1]["metrics"]["questions"]
    assert "nothing to tell apart" in metrics["topic"]["reason"] and metrics["mood"]["eval"] != "none"
    resp = client.post("/predict", json={"tasks": [task(50, "I love it")], "project": "1.1795516926",
                                         "label_config": CONFIG})
    (result,) = resp.json["results"]
    assert [item["from_name"] for item in result["result"]] == ["mood"]
    assert np.isfinite(result["score"])
