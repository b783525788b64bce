"""A config with a multi-label question and a single-choice one about the same text, through the
HTTP app with the real model: webhooks store both answers, one version learns both, /predict
pre-fills both, and the score follows the least certain question; the report page and the export
CLI give each question its labels, stopping signal and suspicious labels."""
import csv
import itertools
import json
import re

import numpy as np

from baal_backend import insight
from baal_backend.__main__ import main
from baal_backend.question_insight import SET_SEPARATOR

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


#: A text only about travel, with "billing" ticked as well: the label the report must doubt.
WRONG = (37, "About the hotel booking for my trip to Rome: really enjoyed it", ("billing", "travel"))


def report_data(client, project: str) -> dict:
    """The data the report page at /report/<project> draws from (its JSON script element)."""
    html = client.get(f"/report/{project}").get_data(as_text=True)
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S).group(1))


def build_project(client, pool: int = 60):
    """The two-question project: `pool` unlabeled tasks asked for predictions, then 36 labels and
    the `WRONG` one, trained. Returns the labels sent as (topics, mood) per annotation."""
    assert client.post("/setup", json={"project": "1.1795516926", "schema": CONFIG}).status_code == 200
    unlabeled = [task(200 + i, _text(topics, 20 + i, happy) + f" ({i})")
                 for i, (topics, happy) in zip(range(pool), itertools.cycle(itertools.product(SETS, [True, False])))]
    assert client.post("/predict", json={"tasks": unlabeled, "project": "1.1795516926",
                                         "label_config": CONFIG}).status_code == 200
    rows = [(topics, k, happy) for k, (topics, happy) in enumerate(itertools.product(SETS, [True, False]))]
    rows = [(topics, k + j, happy) for j in range(3) for topics, k, happy in rows]  # 36 labels
    events = [_event(i, _text(topics, k, happy), topics, "happy" if happy else "unhappy")
              for i, (topics, k, happy) in enumerate(rows, start=1)] + [_event(WRONG[0], WRONG[1], WRONG[2], "happy")]
    for event in events:
        resp = client.post("/webhook", json=event)
        assert resp.status_code == 200, resp.json
    assert client.engine.jobs.wait_idle("1", 300)
    return [(topics, "happy" if happy else "unhappy") for topics, _, happy in rows] + [(WRONG[2], "happy")]


def test_two_questions_one_multi_label_both_learn_and_prefill(make_app, tmp_path, monkeypatch):
    client = make_app(MIN_LABELS="10")
    sent = build_project(client)
    details = client.get("/versions?project=1").json["details"]
    assert details and details[-1]["n_labels"] == 37
    questions = details[-1]["metrics"]["questions"]
    assert set(questions) == {"topic", "mood"} and questions["topic"]["micro_f1"] > 0.6
    _report_has_a_section_per_question(client, sent, details[-1]["version"])
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    _export_names_the_question(tmp_path)

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
    _the_report_follows_the_current_config(client)


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


def _report_has_a_section_per_question(client, sent, version):
    data = report_data(client, "1")
    topic, mood = data["questions"]
    assert (topic["name"], topic["multiple"], mood["name"], mood["multiple"]) == ("topic", True, "mood", False)
    assert topic["labels_per_choice"] == {name: sum(name in topics for topics, _ in sent) for name in TOPICS}
    assert mood["labels_per_choice"] == {m: sum(m == given for _, given in sent) for m in ("happy", "unhappy")}
    assert topic["metrics"]["eval"] != "none" and topic["metrics"]["micro_f1"] > 0.6
    assert mood["metrics"]["macro_f1"] > 0.6
    # each question's stopping signal, on its own stop-set predictions (a multi-label one's: label sets)
    assert set(data["stopping"]["questions"]) == {"topic", "mood"}
    assert all(q["stopping"]["reason"] and q["stopping"]["stop"] is False for q in (topic, mood))
    assert "topic" in data["stopping"]["reason"] and "mood" in data["stopping"]["reason"]
    assert client.get("/versions?project=1").json["stopping"]["questions"].keys() == {"topic", "mood"}
    line = insight.history(client.engine.project("1"))[-1]
    assert line["version"] == version and len(line["questions"]["topic"]["stop_ids"]) == 60
    topic_sets = line["questions"]["topic"]["stop_pred"]
    assert all(set(p.split(SET_SEPARATOR)) <= set(TOPICS) for p in topic_sets)
    assert any(SET_SEPARATOR in p for p in topic_sets)  # a predicted set of two labels is one category
    assert set(line["questions"]["mood"]["stop_pred"]) == {"happy", "unhappy"}
    # the pool sample: per task each question's answer, and the least certain one's rank
    assert len(data["pool"]) == 60 and all(set(r["answers"]) == {"topic", "mood"} for r in data["pool"])
    assert all(r["rank"] == min(a["rank"] for a in r["answers"].values()) for r in data["pool"])
    assert data["threshold"] == max(r["rank"] for r in data["pool"])  # the 100 lowest: here all 60
    # the wrong "billing" is an extra label near the top of the topic question's suspicious list
    top = [(s["annotation"], s["label"], s["kind"]) for s in topic["suspicious"][:3]]
    assert (WRONG[0], "billing", "extra") in top, topic["suspicious"][:5]
    assert all(s["question"] == "mood" and s["kind"] == "other class" for s in mood["suspicious"])


def _export_names_the_question(tmp_path):
    """`python -m baal_backend export` (its `main`, in this process: tests/integration/test_report.py
    runs the command itself) over the MODEL_DIR of the environment."""
    def export(*args):
        assert main(["export", "--project", "1", *args]) == 0

    export("--suspicious", "--out", str(tmp_path / "suspicious.csv"))
    rows = list(csv.DictReader(open(tmp_path / "suspicious.csv", encoding="utf-8")))
    assert rows and {r["question"] for r in rows} <= {"topic", "mood"}
    wrong = [r for r in rows if r["annotation"] == str(WRONG[0]) and r["label"] == "billing"]
    assert wrong and wrong[0]["question"] == "topic" and wrong[0]["kind"] == "extra"
    # by default the 100 lowest rank scores (here all 60 sampled texts): rows of both questions,
    # not the one or two whose single-choice margin is below 0.3
    export("--out", str(tmp_path / "default.json"))
    rows = json.loads((tmp_path / "default.json").read_text())
    assert len(rows) == 60 and {r["question"] for r in rows} == {"topic", "mood"}
    export("--threshold", "1", "--out", str(tmp_path / "to_label.json"))
    rows = json.loads((tmp_path / "to_label.json").read_text())
    assert len(rows) == 60 and {r["question"] for r in rows} <= {"topic", "mood"}
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)


def _the_report_follows_the_current_config(client):
    """The config loses a question, then becomes one simple question: before and after the retrain
    the report's stop signal, pool rows and learning curve name only the questions asked now."""
    topic_only = re.sub(r'<Choices name="mood".*?</Choices>', "", CONFIG)
    assert client.post("/setup", json={"project": "1.1795516926", "schema": topic_only}).status_code == 200
    for _ in range(2):  # at once (the old version's files), then after the retrain
        data = report_data(client, "1")
        assert [q["name"] for q in data["questions"]] == ["topic"]
        assert set(data["stopping"]["questions"]) == {"topic"} and "mood" not in data["stopping"]["reason"]
        assert data["pool"] and all(set(r["answers"]) == {"topic"} for r in data["pool"])
        assert all(r["question"] == "topic" and r["rank"] == r["answers"]["topic"]["rank"] for r in data["pool"])
        assert all(set(v["questions"]) <= {"topic"} for v in data["versions"] if "questions" in v)
        assert all(s["question"] == "topic" for s in data["suspicious"])
        assert client.engine.jobs.wait_idle("1", 300)
    simple = ('<View><Text name="text" value="$text"/><Choices name="mood" toName="text" choice="single">'
              '<Choice value="happy"/><Choice value="unhappy"/></Choices></View>')
    assert client.post("/setup", json={"project": "1.1795516926", "schema": simple}).status_code == 200
    lines = {h["version"]: h for h in insight.history(client.engine.project("1"))}
    for _ in range(2):
        data = report_data(client, "1")
        assert data["questions"] is None and "questions" not in data["stopping"]
        assert "topic" not in data["stopping"]["reason"] and "mood" not in data["stopping"]["reason"]
        assert all("questions" not in v and "answers" not in r for v in data["versions"] for r in data["pool"])
        for v in data["versions"]:  # a two-question version's point on the curve: its mood figures
            mood = lines.get(v["version"], {}).get("questions", {}).get("mood")
            if mood and "topic" in lines[v["version"]]["questions"]:
                assert (v["macro_f1"], v["accuracy"]) == (mood["macro_f1"], mood["accuracy"])
        assert client.engine.jobs.wait_idle("1", 300)
