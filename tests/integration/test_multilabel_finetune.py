"""TRAIN_MODE=finetune on a multi-label question: the body is fine-tuned under the sigmoid head
(baal's trainer), the version keeps its own body, and a fresh process serves it the same."""
import json

import numpy as np

from tests.helpers import task
from tests.integration.test_questions import SETS, TOPICS

CONFIG = ('<View><Text name="text" value="$text"/><Choices name="topic" toName="text" choice="multiple">'
          '<Choice value="billing"/><Choice value="travel"/><Choice value="card"/></Choices></View>')


def _event(annotation_id: int, topics) -> dict:
    text = "About " + " and ".join(TOPICS[t][annotation_id % 3] for t in topics)
    return {"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": CONFIG},
            "task": {"id": annotation_id, "data": {"text": text}, "project": 1},
            "annotation": {"id": annotation_id, "task": annotation_id,
                           "result": [{"from_name": "topic", "to_name": "text", "type": "choices",
                                       "value": {"choices": list(topics)}}]}}


def test_finetune_mode_fine_tunes_a_multi_label_body_and_serves_it_after_a_restart(make_app):
    client = make_app(TRAIN_MODE="finetune", EPOCHS=2, MAX_LENGTH=32, EVAL_FRACTION=0, BATCH_SIZE=8, MIN_LABELS=10)
    assert client.post("/setup", json={"project": "1.1795516926", "schema": CONFIG}).status_code == 200
    for i in range(1, 19):
        assert client.post("/webhook", json=_event(i, SETS[i % len(SETS)])).status_code == 200
    assert client.engine.jobs.wait_idle("1", 600)
    details = client.get("/versions?project=1").json["details"]
    assert details and details[-1]["mode"] == "finetune" and details[-1]["n_labels"] == 18
    path = client.engine.project("1").registry.path(details[-1]["version"])
    member = json.loads((path / "classifier.json").read_text())["questions"][0]
    saved = json.loads((path / member["dir"] / "classifier.json").read_text())
    assert saved["kind"] == "multilabel-finetuned-body" and saved["labels"] == ["billing", "travel", "card"]
    assert (path / member["dir"] / "body" / "config.json").exists()
    _, models = client.engine.classifier("1")
    clf = models.members["topic"]
    assert clf.encoder.identity != client.engine.encoder.identity  # the body was fine-tuned

    texts = ["About my flight to Paris", "About the invoice on my bill and my credit card"]
    restarted = make_app(model_dir=client.engine.settings.model_dir, TRAIN_MODE="finetune", MAX_LENGTH=32)
    resp = restarted.post("/predict", json={"tasks": [task(100 + i, t) for i, t in enumerate(texts)],
                                            "project": "1.1795516926", "label_config": CONFIG})
    assert resp.status_code == 200, resp.json
    results = resp.json["results"]
    assert all(r["result"] and r["result"][0]["from_name"] == "topic" for r in results)
    _, reloaded = restarted.engine.classifier("1")
    assert np.allclose(clf.encoder.embed(texts), reloaded.members["topic"].encoder.embed(texts), atol=1e-5)
    assert np.allclose(clf.predict_proba(texts, 50).mean(-1), reloaded.members["topic"].predict_proba(texts, 50).mean(-1),
                       atol=0.1)
