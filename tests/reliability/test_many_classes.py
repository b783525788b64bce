"""A 150-class project keeps publishing new versions from 10 to 1,000 labels (in process)."""
import random
import time

from baal_backend.data import load_clinc
from tests.conftest import REPORT
from tests.helpers import label_config

STEPS = [10, 50, 150, 300, 450, 600, 749, 1000]


def test_150_classes_publish_at_every_step_from_10_to_1000_labels(make_app):
    data = load_clinc()
    intents = sorted(set(data.labels))
    config = label_config(intents)
    rows = random.Random(0).sample(list(zip(data.texts, data.labels)), STEPS[-1])
    client = make_app(MIN_LABELS=10)
    sent, seen, timings = 0, [], []
    for step in STEPS:
        for aid in range(sent + 1, step + 1):
            text, label = rows[aid - 1]
            event = {"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": config},
                     "task": {"id": aid, "data": {"text": text}},
                     "annotation": {"id": aid, "result": [{"from_name": "intent", "to_name": "text", "type": "choices",
                                                           "value": {"choices": [label]}}]}}
            assert client.post("/webhook", json=event).status_code == 200
        sent = step
        t0 = time.perf_counter()
        assert client.engine.jobs.wait_idle("1", 300)
        timings.append(time.perf_counter() - t0)
        body = client.get("/versions?project=1").json
        assert body["last_run"]["status"] != "failed", (step, body["last_run"])
        assert body["details"][-1]["n_labels"] == step, (step, body["last_run"])  # a new version at every step
        seen.append((step, body["details"][-1]["metrics"].get("eval"), body["details"][-1]["metrics"].get("accuracy")))
    REPORT.append("150 classes, a version at every step: " + ", ".join(
        f"{n} labels ({method}, acc {acc:.2f})" if acc is not None else f"{n} labels ({method})" for n, method, acc in seen))
